"""COCO JSON with any categories: instances (polygons and RLE, decoded with pycocotools) and panoptic.

Instances give semantic targets (every annotation painted with its class, larger ones first so small
objects stay on top, crowd regions included, unannotated pixels void) and, for panoptic training,
segments: one per annotation of a thing class (``iscrowd`` ones are crowd regions), one per stuff class
(the union of its annotations). Panoptic JSON is read like COCO panoptic, categories from the file.

:func:`read_instances` parses a json once and reports every problem it finds (unknown image or category
ids, categories not in ``names``, degenerate polygons, malformed RLE) with the file; the dataset check
prints them all, the readers refuse a split that has any.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pem_rt.errors import PemError
from training.data.coco_panoptic import panoptic_ground_truth
from training.data.records import IGNORE, DatasetSource, GroundTruth, Record, SegmentInfo
from training.data.spec import DatasetSpec, Problem
from training.dataset_meta import DatasetMeta


@dataclass(frozen=True)
class Annotation:
    id: int
    category: int  # contiguous class index
    segmentation: Any  # polygons (list of lists) or an RLE dict, as in the file
    iscrowd: bool
    area: float


@dataclass
class ImageEntry:
    file: Path
    height: int
    width: int
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class CocoIndex:
    """A parsed COCO json: images by id with their annotations, the categories, the problems found."""

    json_path: Path
    images: dict[int, ImageEntry]
    categories: list[dict[str, Any]]
    problems: list[Problem]


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PemError(f"{path} does not exist (the split's annotations json)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise PemError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "categories")):
        raise PemError(f"{path} is not a COCO json: it needs `images` and `categories` lists")
    return data


def category_names(data: dict[str, Any]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Class names of a json's categories (sorted by id) and the indices of those marked ``isthing``."""
    cats = sorted(data["categories"], key=lambda c: int(c.get("id", 0)))
    names = tuple(str(c.get("name", c.get("id"))) for c in cats)
    return names, tuple(i for i, c in enumerate(cats) if c.get("isthing"))


def category_map(
    data: dict[str, Any], names: tuple[str, ...], path: Path
) -> tuple[dict[int, int], list[Problem]]:
    """COCO category id -> contiguous class index, by name; categories not in ``names`` are problems."""
    mapping, problems = {}, []
    for c in data["categories"]:
        try:
            cid, name = int(c["id"]), str(c["name"])
        except (KeyError, TypeError, ValueError):
            problems.append(Problem(path, f"category {c!r} needs an integer id and a name"))
            continue
        if name in names:
            mapping[cid] = names.index(name)
        else:
            problems.append(Problem(path, f"category '{name}' (id {cid}) is not one of names {list(names)}"))
    return mapping, problems


def read_instances(path: Path, image_dir: Path, names: tuple[str, ...]) -> CocoIndex:
    data = read_json(path)
    cmap, problems = category_map(data, names, path)
    images: dict[int, ImageEntry] = {}
    for img in data["images"]:
        try:
            images[int(img["id"])] = ImageEntry(
                image_dir / str(img["file_name"]), int(img["height"]), int(img["width"])
            )
        except (KeyError, TypeError, ValueError):
            problems.append(
                Problem(path, f"image entry {str(img)[:80]} needs id, file_name, height and width")
            )
    for ann in data.get("annotations", []):
        entry, problem = _annotation(ann, images, cmap, path)
        if problem is not None:
            problems.append(problem)
        if entry is not None:
            images[int(ann["image_id"])].annotations.append(entry)
    return CocoIndex(path, images, data["categories"], problems)


def _annotation(
    ann: Any, images: dict[int, ImageEntry], cmap: dict[int, int], path: Path
) -> tuple[Annotation | None, Problem | None]:
    try:
        aid, image_id, cid = int(ann["id"]), int(ann["image_id"]), int(ann["category_id"])
        seg = ann["segmentation"]
    except (KeyError, TypeError, ValueError):
        return None, Problem(
            path, f"annotation {str(ann)[:80]} needs id, image_id, category_id, segmentation"
        )
    if image_id not in images:
        return None, Problem(path, f"annotation {aid}: unknown image_id {image_id}")
    if cid not in cmap:
        return None, Problem(path, f"annotation {aid}: unknown category_id {cid}")
    img = images[image_id]
    problem = segmentation_problem(seg, img.height, img.width)
    if problem is not None:
        return None, Problem(path, f"annotation {aid} ({img.file.name}): {problem}")
    area = float(ann.get("area") or 0.0)
    entry = Annotation(aid, cmap[cid], seg, bool(ann.get("iscrowd", 0)), area)
    if isinstance(seg, list) and any(_area(poly) <= 0 for poly in seg):
        return entry, Problem(path, f"annotation {aid} ({img.file.name}): polygon of zero area", error=False)
    return entry, None


def segmentation_problem(seg: Any, h: int, w: int) -> str | None:
    """Why ``seg`` cannot be decoded at h x w, or None: degenerate polygons, malformed or mis-sized RLE."""
    if isinstance(seg, list):
        if not seg:
            return "empty segmentation"
        for poly in seg:
            if not isinstance(poly, list) or not all(isinstance(v, (int, float)) for v in poly):
                return "a polygon must be a flat list of x, y numbers"
            if len(poly) < 6 or len(poly) % 2:  # pycocotools would read 4 numbers as a box
                return f"degenerate polygon ({len(poly)} coordinates; need at least 3 x, y points)"
        return None
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if list(seg["size"]) != [h, w]:
            return f"RLE size {list(seg['size'])} differs from the image's [{h}, {w}]"
        counts = seg["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != h * w:
                return f"uncompressed RLE counts must be non-negative and sum to {h * w}"
            return None
        if isinstance(counts, str):
            try:
                decode({"size": [h, w], "counts": counts}, h, w)
            except Exception as e:  # pycocotools' C decoder raises assorted errors on bad strings
                return f"compressed RLE does not decode ({type(e).__name__})"
            return None
    return "segmentation must be polygons (a list of lists) or an RLE {size, counts}"


def _area(poly: list[float]) -> float:
    xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    return 0.5 * abs(float(np.dot(xy[:, 0], np.roll(xy[:, 1], 1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], 1))))


def decode(seg: Any, h: int, w: int) -> np.ndarray:
    """One annotation's segmentation -> bool mask [h, w] (pycocotools)."""
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    elif isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = {"size": [h, w], "counts": seg["counts"].encode("ascii")}
    with warnings.catch_warnings():  # pycocotools 2.0 on numpy 2: a DeprecationWarning per call
        warnings.simplefilter("ignore", DeprecationWarning)
        mask = mask_utils.decode(rle)
    if mask.shape[:2] != (h, w):
        raise ValueError(f"decoded mask {mask.shape} is not {h}x{w}")
    return mask.astype(bool)


def paint(entry: ImageEntry, things: frozenset[int]) -> tuple[np.ndarray, np.ndarray, list[SegmentInfo]]:
    """Semantic map (uint8, void 255), segment map (int32, void 0) and segments of one image."""
    semantic = np.full((entry.height, entry.width), IGNORE, dtype=np.uint8)
    ids = np.zeros((entry.height, entry.width), dtype=np.int32)
    segments: list[SegmentInfo] = []
    stuff_ids: dict[int, int] = {}
    masks = [(a, decode(a.segmentation, entry.height, entry.width)) for a in entry.annotations]
    for a, m in sorted(masks, key=lambda am: -int(am[1].sum())):  # larger first: small objects on top
        semantic[m] = a.category
        if a.category in things:
            seg_id = len(segments) + 1
            segments.append(SegmentInfo(seg_id, a.category, a.iscrowd))
        elif a.category in stuff_ids:
            seg_id = stuff_ids[a.category]
        else:
            seg_id = stuff_ids[a.category] = len(segments) + 1
            segments.append(SegmentInfo(seg_id, a.category))
        ids[m] = seg_id
    present = set(np.unique(ids).tolist())
    return semantic, ids, [s for s in segments if s.id in present]


def refuse(problems: list[Problem], what: str) -> None:
    errors = [p for p in problems if p.error]
    if errors:
        more = (
            f" (and {len(errors) - 1} more problems; `pem dataset check` lists them)"
            if len(errors) > 1
            else ""
        )
        raise PemError(f"{errors[0].line()}{more}; fix {what}")


class CocoInstances(DatasetSource):
    """A split of a ``format: coco`` dataset."""

    name = "custom"

    def __init__(self, spec: DatasetSpec, split: str, meta: DatasetMeta) -> None:
        super().__init__(spec.root, split)
        self.meta = meta
        paths = spec.split(split)
        assert paths.annotations is not None
        self.index = read_instances(paths.annotations, paths.images, meta.classes)
        refuse(self.index.problems, str(paths.annotations))
        self.things = frozenset(meta.thing_ids)
        self.entries: dict[Path, ImageEntry] = {}
        for entry in sorted(self.index.images.values(), key=lambda e: str(e.file)):
            self.entries[entry.file] = entry
            self.records.append(Record(stem=entry.file.stem, image=entry.file))
        if not self.records:
            raise PemError(f"{paths.annotations} lists no images (split {split} is empty)")

    def ground_truth(self, record: Record, panoptic: bool) -> GroundTruth:
        semantic, ids, segments = paint(self.entries[record.image], self.things)
        return GroundTruth(semantic, ids, segments) if panoptic else GroundTruth(semantic)


class CocoPanopticCustom(DatasetSource):
    """A split of a ``format: coco-panoptic`` dataset (categories from the json)."""

    name = "custom"

    def __init__(self, spec: DatasetSpec, split: str, meta: DatasetMeta) -> None:
        from training.data.coco_panoptic import read_panoptic_json

        super().__init__(spec.root, split)
        self.meta = meta
        paths = spec.split(split)
        assert paths.annotations is not None and paths.masks is not None
        data = read_json(paths.annotations)
        cmap, problems = category_map(data, meta.classes, paths.annotations)
        refuse(problems, str(paths.annotations))
        layout = f"{paths.annotations} with PNGs in {paths.masks} and images in {paths.images}"
        self.records = read_panoptic_json(paths.annotations, paths.masks, paths.images, cmap, layout)

    def ground_truth(self, record: Record, panoptic: bool) -> GroundTruth:
        return panoptic_ground_truth(record, panoptic)
