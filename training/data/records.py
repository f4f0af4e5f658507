"""What every dataset reader produces: image records and ground truth in contiguous class ids.

Semantic ground truth is a uint8 label map of contiguous class indices (255 = void). Panoptic ground
truth is an int32 segment-id map (0 = void) plus one :class:`SegmentInfo` per segment, the COCO
panoptic convention that cityscapesscripts and panopticapi evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pem_rt.errors import PemError
from pem_rt.segments import VOID as IGNORE
from pem_rt.segments import rgb_to_id
from training.dataset_meta import DatasetMeta


@dataclass(frozen=True)
class SegmentInfo:
    """One ground-truth segment: its id in the segment map, contiguous class index, crowd flag."""

    id: int
    category: int
    iscrowd: bool = False


@dataclass(frozen=True)
class Record:
    """One image of a dataset split. ``segments`` is set for json-described (COCO-style) panoptic data."""

    stem: str
    image: Path
    semantic: Path | None = None
    panoptic: Path | None = None
    segments: tuple[SegmentInfo, ...] | None = None


@dataclass
class GroundTruth:
    semantic: np.ndarray  # uint8 [H, W], contiguous ids, 255 = void
    panoptic: np.ndarray | None = None  # int32 [H, W], 0 = void
    segments: list[SegmentInfo] | None = None


def read_rgb(path: Path) -> np.ndarray:
    """An image file -> uint8 RGB [H, W, 3]."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise PemError(f"cannot read image {path}; is it a valid PNG/JPEG?")
    return np.ascontiguousarray(img[:, :, ::-1])


def read_label(path: Path) -> np.ndarray:
    """A single-channel label PNG (8 or 16 bit) -> its integer array, unchanged."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise PemError(f"cannot read label file {path}; is it a valid PNG?")
    if img.ndim != 2:
        raise PemError(f"label file {path} has {img.shape[2]} channels; expected a single-channel PNG")
    return img


def read_panoptic_png(path: Path) -> np.ndarray:
    """A COCO-format panoptic PNG (RGB-encoded ids) -> int32 segment ids."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise PemError(f"cannot read panoptic file {path}; is it a valid PNG?")
    return rgb_to_id(img[:, :, ::-1])


def semantic_from_panoptic(ids: np.ndarray, segments: list[SegmentInfo]) -> np.ndarray:
    """Paint each segment's class (crowd regions included) into a uint8 label map, 255 elsewhere."""
    out = np.full(ids.shape, IGNORE, dtype=np.uint8)
    for s in segments:
        out[ids == s.id] = s.category
    return out


def lookup_table(pairs: dict[int, int], size: int) -> np.ndarray:
    """A LUT of ``size`` entries mapping dataset ids to contiguous ids (255 for unknown ids)."""
    lut = np.full(size, IGNORE, dtype=np.uint8)
    for k, v in pairs.items():
        lut[k] = v
    return lut


class DatasetSource:
    """A dataset split on disk: its records and how to read their ground truth.

    Subclasses set ``meta`` (class names, thing ids) and ``records`` and implement :meth:`ground_truth`.
    """

    name = "dataset"
    meta: DatasetMeta

    def __init__(self, root: Path, split: str) -> None:
        self.root = Path(root)
        self.split = split
        self.records: list[Record] = []

    def ground_truth(self, record: Record, panoptic: bool) -> GroundTruth:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.records)
