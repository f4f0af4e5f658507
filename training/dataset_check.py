"""Read every file of a dataset.yaml dataset once: counts per split and class, and every problem.

Problems, one per line with the file: missing or unreadable images and masks, masks whose size differs
from their image's, class ids that are not in ``names``, empty splits, COCO annotations with an unknown
image or category id, categories not in ``names``, degenerate polygons, malformed RLE. Errors break
training (``pem train`` runs this check before its first step and refuses them); warnings do not
(masks without an image, images without annotations).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pem_rt.errors import PemError
from pem_rt.files import atomic_path
from training.data.coco_json import category_map, paint, read_instances, read_json
from training.data.custom import custom_meta, list_images
from training.data.records import IGNORE, read_panoptic_png, semantic_from_panoptic
from training.data.spec import DatasetSpec, Problem, load_spec
from training.dataset_meta import DatasetMeta


@dataclass
class SplitStats:
    """Per split: images read, images that show each class, pixels of each class, void pixels."""

    images: int
    class_images: np.ndarray
    class_pixels: np.ndarray
    void_pixels: int = 0

    def add(self, semantic: np.ndarray) -> None:
        counts = np.bincount(semantic.ravel(), minlength=256)
        k = len(self.class_pixels)
        self.images += 1
        self.class_pixels += counts[:k]
        self.class_images += counts[:k] > 0
        self.void_pixels += int(counts[IGNORE])


@dataclass
class CheckReport:
    spec: DatasetSpec
    meta: DatasetMeta | None
    splits: dict[str, SplitStats] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.error]

    def text(self) -> str:
        lines = [f"dataset {self.spec.name} ({self.spec.layout}) described by {self.spec.file}"]
        if self.meta is not None and self.splits:
            lines += self._table(self.meta)
        if self.problems:
            lines.append("problems:")
            lines += [f"  {p.line()}" for p in self.problems]
        warnings = len(self.problems) - len(self.errors)
        lines.append(f"{len(self.errors)} error(s), {warnings} warning(s)")
        return "\n".join(lines)

    def _table(self, meta: DatasetMeta) -> list[str]:
        splits = list(self.splits)
        width = max(12, *(len(c) for c in meta.classes))
        head = f"{'class':<{width}}" + "".join(f" {s + ' images':>14} {s + ' pixels':>14}" for s in splits)
        lines = [
            "  ".join(f"{s}: {st.images} images" for s, st in self.splits.items()),
            head,
            "-" * len(head),
        ]
        for k, name in enumerate(meta.classes):
            row = f"{name:<{width}}"
            for st in self.splits.values():
                total = max(1, int(st.class_pixels.sum()) + st.void_pixels)
                row += f" {int(st.class_images[k]):>14} {100 * st.class_pixels[k] / total:>13.2f}%"
            lines.append(row)
        void = f"{'(void)':<{width}}"
        for st in self.splits.values():
            total = max(1, int(st.class_pixels.sum()) + st.void_pixels)
            void += f" {'':>14} {100 * st.void_pixels / total:>13.2f}%"
        return [*lines, void]


def check_dataset(
    root: str | Path, splits: Iterable[str] = ("train", "val"), progress: bool = False
) -> CheckReport:
    """Check the dataset.yaml dataset under ``root`` (its file itself must parse: else a PemError)."""
    spec = load_spec(root)
    try:
        meta = custom_meta(spec)
    except PemError as e:
        return CheckReport(spec, None, problems=[Problem(spec.file, str(e))])
    report = CheckReport(spec, meta)
    check = {"folders": _check_folders, "coco": _check_coco, "coco-panoptic": _check_panoptic}[spec.layout]
    for split in splits:
        stats = SplitStats(0, np.zeros(len(meta.classes), np.int64), np.zeros(len(meta.classes), np.int64))
        report.splits[split] = stats
        check(spec, meta, split, stats, report.problems, progress)
        if stats.images == 0 and not any(p.error for p in report.problems if _in_split(p, spec, split)):
            report.problems.append(Problem(spec.split(split).images, f"split {split} has no usable images"))
    return report


def _in_split(problem: Problem, spec: DatasetSpec, split: str) -> bool:
    paths = spec.split(split)
    return any(
        p is not None and (problem.file == p or p in problem.file.parents)
        for p in (paths.images, paths.masks, paths.annotations)
    )


def _bar(items: list[Path], split: str, progress: bool) -> Iterator[Path]:
    yield from tqdm(items, desc=f"check {split}", disable=not progress, leave=False, dynamic_ncols=True)


def _read_image(path: Path, problems: list[Problem]) -> tuple[int, int] | None:
    if not path.is_file():
        problems.append(Problem(path, "image is missing"))
        return None
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        problems.append(Problem(path, "image is unreadable (not a valid image file)"))
        return None
    return int(img.shape[0]), int(img.shape[1])


def _check_folders(
    spec: DatasetSpec,
    meta: DatasetMeta,
    split: str,
    stats: SplitStats,
    problems: list[Problem],
    progress: bool,
) -> None:
    paths = spec.split(split)
    assert paths.masks is not None
    for folder in (paths.images, paths.masks):
        if not folder.is_dir():
            problems.append(Problem(folder, f"folder of split {split} does not exist"))
    if not (paths.images.is_dir() and paths.masks.is_dir()):
        return
    images = list_images(paths.images)
    if not images:
        problems.append(Problem(paths.images, f"split {split} is empty (no images)"))
    stems = {p.stem for p in images}
    for mask_path in sorted(paths.masks.glob("*.png")):
        if mask_path.stem not in stems:
            problems.append(Problem(mask_path, "mask without an image (not used)", error=False))
    for image in _bar(images, split, progress):
        size = _read_image(image, problems)
        semantic = _folder_mask(paths.masks / f"{image.stem}.png", size, spec, meta, problems)
        if size is not None and semantic is not None:
            stats.add(semantic)


def _folder_mask(
    path: Path, size: tuple[int, int] | None, spec: DatasetSpec, meta: DatasetMeta, problems: list[Problem]
) -> np.ndarray | None:
    if not path.is_file():
        problems.append(Problem(path, "mask is missing"))
        return None
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        problems.append(Problem(path, "mask is unreadable (not a valid PNG)"))
        return None
    if mask.ndim != 2:
        problems.append(Problem(path, f"mask has {mask.shape[2]} channels; write one class index per pixel"))
        return None
    if size is not None and mask.shape != size:
        problems.append(
            Problem(path, f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is {size[1]}x{size[0]}")
        )
        return None
    values = mask.astype(np.int64)
    bad = (values != spec.ignore_index) & (values >= len(meta.classes))
    if bad.any():
        ids = sorted(int(v) for v in np.unique(values[bad]))[:8]
        problems.append(
            Problem(
                path,
                f"class ids {ids} are not in names (0..{len(meta.classes) - 1}, "
                f"ignore_index {spec.ignore_index})",
            )
        )
        return None
    return np.where(values == spec.ignore_index, IGNORE, values).astype(np.uint8)


def _check_coco(
    spec: DatasetSpec,
    meta: DatasetMeta,
    split: str,
    stats: SplitStats,
    problems: list[Problem],
    progress: bool,
) -> None:
    paths = spec.split(split)
    assert paths.annotations is not None
    try:
        index = read_instances(paths.annotations, paths.images, meta.classes)
    except PemError as e:
        problems.append(Problem(paths.annotations, str(e).removeprefix(f"{paths.annotations} ")))
        return
    problems.extend(index.problems)
    if not index.images:
        problems.append(Problem(paths.annotations, f"split {split} is empty (no images)"))
    entries = {e.file: e for e in index.images.values()}
    for file in _bar(sorted(entries), split, progress):
        entry = entries[file]
        size = _read_image(file, problems)
        if size is None:
            continue
        if size != (entry.height, entry.width):
            problems.append(
                Problem(
                    file,
                    f"image is {size[1]}x{size[0]} but {paths.annotations.name} says "
                    f"{entry.width}x{entry.height}",
                )
            )
            continue
        if not entry.annotations:
            problems.append(Problem(file, "image has no annotations (all void)", error=False))
        stats.add(paint(entry, frozenset(meta.thing_ids))[0])


def _check_panoptic(
    spec: DatasetSpec,
    meta: DatasetMeta,
    split: str,
    stats: SplitStats,
    problems: list[Problem],
    progress: bool,
) -> None:
    from training.data.records import SegmentInfo

    paths = spec.split(split)
    assert paths.annotations is not None and paths.masks is not None
    try:
        data = read_json(paths.annotations)
    except PemError as e:
        problems.append(Problem(paths.annotations, str(e).removeprefix(f"{paths.annotations} ")))
        return
    cmap, cat_problems = category_map(data, meta.classes, paths.annotations)
    problems.extend(cat_problems)
    images = {int(i["id"]): str(i["file_name"]) for i in data["images"] if "id" in i and "file_name" in i}
    annotations = data.get("annotations", [])
    if not annotations:
        problems.append(Problem(paths.annotations, f"split {split} is empty (no annotations)"))
    for ann in tqdm(annotations, desc=f"check {split}", disable=not progress, leave=False):
        image_id = ann.get("image_id")
        if image_id not in images:
            problems.append(
                Problem(paths.annotations, f"annotation {ann.get('file_name')}: unknown image_id {image_id}")
            )
            continue
        segments = []
        for s in ann.get("segments_info", []):
            if int(s.get("category_id", -1)) not in cmap:
                problems.append(
                    Problem(
                        paths.annotations,
                        f"{ann.get('file_name')}: segment {s.get('id')} has unknown "
                        f"category_id {s.get('category_id')}",
                    )
                )
                continue
            segments.append(SegmentInfo(int(s["id"]), cmap[int(s["category_id"])]))
        size = _read_image(paths.images / images[image_id], problems)
        png = paths.masks / str(ann.get("file_name"))
        if not png.is_file():
            problems.append(Problem(png, "panoptic PNG is missing"))
            continue
        try:
            ids = read_panoptic_png(png)
        except PemError:
            problems.append(Problem(png, "panoptic PNG is unreadable"))
            continue
        if size is not None and ids.shape != size:
            problems.append(
                Problem(png, f"PNG is {ids.shape[1]}x{ids.shape[0]} but its image is {size[1]}x{size[0]}")
            )
            continue
        if size is not None:
            stats.add(semantic_from_panoptic(ids, segments))


def write_chart(report: CheckReport, path: Path) -> Path:
    """A PNG bar chart: images per class and pixel share per class, one bar per split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if report.meta is None:
        raise PemError(f"{report.spec.file}: no classes to chart")
    classes = report.meta.classes
    x = np.arange(len(classes))
    fig, (ax_img, ax_pix) = plt.subplots(1, 2, figsize=(max(8.0, 1.2 * len(classes) + 4), 4.5))
    width = 0.8 / max(1, len(report.splits))
    for i, (split, st) in enumerate(report.splits.items()):
        total = max(1, int(st.class_pixels.sum()) + st.void_pixels)
        ax_img.bar(x + i * width, st.class_images, width, label=split)
        ax_pix.bar(x + i * width, 100 * st.class_pixels / total, width, label=split)
    for ax, title in ((ax_img, "images showing the class"), (ax_pix, "share of pixels (%)")):
        ax.set_xticks(x + width * (len(report.splits) - 1) / 2, classes, rotation=30, ha="right")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
    fig.suptitle(f"{report.spec.name}: {len(report.errors)} error(s)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def startup_check(root: Path, splits: Iterable[str], progress: bool) -> None:
    """What `pem train` runs before its first step: any error is a PemError listing the problems."""
    report = check_dataset(root, [s for s in splits if s], progress)
    errors = report.errors
    if errors:
        listed = "\n".join(f"  {p.line()}" for p in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise PemError(
            f"{len(errors)} problem(s) in {report.spec.file.parent} would break training:\n{listed}{more}\n"
            f"fix them (`pem dataset check --data {root}` lists everything)"
        )
