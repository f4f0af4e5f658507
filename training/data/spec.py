"""`DIR/dataset.yaml` (or `dataset.json`): a dataset with its own classes, described by one small file.

::

    name: fields                    # optional; default: the folder's name
    format: folders                 # folders | coco | coco-panoptic (default folders)
    names: [soil, crop, weed, stone, sky]
    colors: [[120, 80, 40], ...]    # optional RGB per class; default: a fixed distinct palette
    things: [weed, stone]           # optional, names or indices: the countable classes (panoptic)
    ignore_index: 255               # mask value of unlabelled pixels (default 255)
    splits:                         # optional; defaults below, for any split name
      train: {images: images/train, masks: masks/train}

Layouts and their per-split defaults (paths relative to DIR):

- ``folders``: ``images: images/<split>`` (any image OpenCV reads: ``pem_rt.images.IMAGE_SUFFIXES``) and
  ``masks: masks/<split>`` (``<same stem>.png``, one class index per pixel, 8 or 16 bit).
- ``coco``: ``images: images/<split>`` and ``annotations: annotations/<split>.json``, COCO instances
  (polygons or RLE, what CVAT, Label Studio, Roboflow and labelme converters export). Categories map to
  ``names`` by name; without ``names`` the classes are the categories of the train json, by id.
  Without ``things`` every category is a thing (the format is about objects).
- ``coco-panoptic``: ``images: images/<split>``, ``annotations: annotations/panoptic_<split>.json`` and
  ``masks: annotations/panoptic_<split>`` (RGB-encoded segment ids). Without ``names``/``things`` they
  come from the json's categories (``isthing``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pem_rt.errors import PemError
from training.dataset_meta import Color, DatasetMeta

Layout = Literal["folders", "coco", "coco-panoptic"]
LAYOUTS: tuple[Layout, ...] = ("folders", "coco", "coco-panoptic")
SPEC_FILES = ("dataset.yaml", "dataset.yml", "dataset.json")
_SPLIT_KEYS = ("images", "masks", "annotations")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: the file, what is wrong, and whether training would break on it."""

    file: Path
    message: str
    error: bool = True

    def line(self) -> str:
        return f"{self.file}: {'' if self.error else 'warning: '}{self.message}"


@dataclass(frozen=True)
class SplitPaths:
    """Where one split lives (absolute paths); ``masks`` or ``annotations`` is None where unused."""

    images: Path
    masks: Path | None = None
    annotations: Path | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset.yaml. ``names`` may be empty for COCO layouts until :func:`resolve_names`."""

    root: Path
    file: Path
    name: str
    layout: Layout
    names: tuple[str, ...]
    colors: tuple[Color, ...] | None
    things: tuple[str | int, ...] | None
    ignore_index: int
    splits: dict[str, dict[str, str]]

    def split(self, split: str) -> SplitPaths:
        given = self.splits.get(split, {})
        defaults = _default_paths(self.layout, split)
        paths = {k: self.root / given.get(k, defaults[k]) for k in defaults}
        return SplitPaths(paths["images"], paths.get("masks"), paths.get("annotations"))

    def meta(
        self, names: tuple[str, ...] | None = None, things: tuple[int, ...] | None = None
    ) -> DatasetMeta:
        """Class names, palette and thing ids; ``names``/``things`` fill what the file leaves to the data."""
        classes = self.names or names or ()
        if not classes:
            raise PemError(f"{self.file}: no class names; add `names: [...]`")
        if self.colors is not None and len(self.colors) != len(classes):
            raise PemError(
                f"{self.file}: {len(self.colors)} colors for {len(classes)} names; give one RGB per class"
            )
        thing_ids = self._thing_ids(classes) if self.things is not None else things
        if thing_ids is None:
            thing_ids = tuple(range(len(classes))) if self.layout == "coco" else ()
        return DatasetMeta(
            name=self.name,
            classes=classes,
            palette=self.colors or default_palette(len(classes)),
            thing_ids=thing_ids,
            dataset_ids=tuple(range(len(classes))),
        )

    def _thing_ids(self, classes: tuple[str, ...]) -> tuple[int, ...]:
        ids = []
        for t in self.things or ():
            if isinstance(t, int) and 0 <= t < len(classes):
                ids.append(t)
            elif isinstance(t, str) and t in classes:
                ids.append(classes.index(t))
            else:
                raise PemError(f"{self.file}: thing '{t}' is not one of names {list(classes)}")
        return tuple(sorted(set(ids)))


def _default_paths(layout: Layout, split: str) -> dict[str, str]:
    if layout == "folders":
        return {"images": f"images/{split}", "masks": f"masks/{split}"}
    if layout == "coco":
        return {"images": f"images/{split}", "annotations": f"annotations/{split}.json"}
    return {
        "images": f"images/{split}",
        "annotations": f"annotations/panoptic_{split}.json",
        "masks": f"annotations/panoptic_{split}",
    }


def default_palette(n: int) -> tuple[Color, ...]:
    """``n`` distinct, deterministic colours (golden-ratio hues at two brightness levels)."""
    import colorsys

    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95 if i % 2 == 0 else 0.7)
        out.append((int(255 * r), int(255 * g), int(255 * b)))
    return tuple(out)


def spec_file(root: Path) -> Path | None:
    """The dataset.yaml/yml/json of ``root``, or None."""
    for name in SPEC_FILES:
        if (root / name).is_file():
            return root / name
    return None


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise PemError(f"cannot read {path} ({e})") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # yaml and json raise their own parse errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PemError(f"{path} is not valid {path.suffix.lstrip('.').upper()} ({first})") from None
    if not isinstance(data, dict):
        raise PemError(f"{path} must hold a mapping (names:, format:, splits: ...)")
    return data


def load_spec(root: str | Path) -> DatasetSpec:
    """Parse ``root``'s dataset.yaml; every mistake is one PemError naming the file and the key."""
    root = Path(root)
    path = spec_file(root)
    if path is None:
        raise PemError(
            f"{root} has no dataset.yaml; describe your dataset in {root}/dataset.yaml "
            "(README: Train on your own data)"
        )
    d = _read_mapping(path)
    unknown = set(d) - {"name", "format", "names", "colors", "things", "ignore_index", "splits"}
    if unknown:
        raise PemError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    layout = d.get("format", "folders")
    if layout not in LAYOUTS:
        raise PemError(f"{path}: format '{layout}' is not one of {', '.join(LAYOUTS)}")
    names = _names(path, d.get("names"))
    if layout == "folders" and not names:
        raise PemError(f"{path}: the folders format needs `names: [...]` (one per class index)")
    return DatasetSpec(
        root=root,
        file=path,
        name=str(d.get("name") or root.resolve().name),
        layout=layout,
        names=names,
        colors=_colors(path, d.get("colors")),
        things=_things(path, d.get("things")),
        ignore_index=_ignore(path, d.get("ignore_index", 255)),
        splits=_splits(path, d.get("splits") or {}),
    )


def _names(path: Path, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
        raise PemError(f"{path}: names must be a list of non-empty strings")
    if len(set(value)) != len(value):
        raise PemError(f"{path}: names must be unique")
    if len(value) > 254:
        raise PemError(f"{path}: {len(value)} names; at most 254 classes fit the 8-bit label maps")
    return tuple(value)


def _colors(path: Path, value: Any) -> tuple[Color, ...] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
        for c in value
    )
    if not ok:
        raise PemError(f"{path}: colors must be a list of [R, G, B] with values 0..255")
    return tuple((c[0], c[1], c[2]) for c in value)


def _things(path: Path, value: Any) -> tuple[str | int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, (str, int)) for t in value):
        raise PemError(f"{path}: things must be a list of class names or indices")
    return tuple(value)


def _ignore(path: Path, value: Any) -> int:
    if not isinstance(value, int) or not 0 <= value <= 65535:
        raise PemError(f"{path}: ignore_index must be an integer 0..65535, got {value!r}")
    return value


def _splits(path: Path, value: Any) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise PemError(f"{path}: splits must map split names to {{images: ..., masks/annotations: ...}}")
    out: dict[str, dict[str, str]] = {}
    for split, paths in value.items():
        if not isinstance(paths, dict) or not all(
            k in _SPLIT_KEYS and isinstance(v, str) for k, v in paths.items()
        ):
            raise PemError(f"{path}: splits.{split} must map images/masks/annotations to relative paths")
        out[str(split)] = dict(paths)
    return out
