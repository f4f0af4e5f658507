"""Cityscapes in its published layout, read as cityscapesscripts defines it.

Layout (``ROOT`` = the folder holding leftImg8bit/ and gtFine/)::

    ROOT/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png
    ROOT/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png       (uint8 labelIds)
    ROOT/gtFine/{split}/{city}/{stem}_gtFine_instanceIds.png    (uint16)

Semantic ground truth maps labelIds to the 19 trainIds (everything else 255). Panoptic ground truth
follows cityscapesscripts' createPanopticImgs: every value of instanceIds is a segment; a value >= 1000
is labelId * 1000 + k (one instance), a smaller value is the labelId itself (stuff, or a crowd region
when the class has instances); segments of classes not evaluated are void (0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pem_rt.errors import PemError
from training.data.records import (
    DatasetSource,
    GroundTruth,
    Record,
    SegmentInfo,
    lookup_table,
    read_label,
)
from training.dataset_meta import CITYSCAPES

LAYOUT = (
    "{root}/leftImg8bit/{split}/<city>/*_leftImg8bit.png with "
    "{root}/gtFine/{split}/<city>/*_gtFine_labelIds.png and *_gtFine_instanceIds.png"
)

LABEL_TO_TRAIN = lookup_table({lid: i for i, lid in enumerate(CITYSCAPES.dataset_ids)}, 256)
THINGS = frozenset(CITYSCAPES.thing_ids)


def panoptic_from_instance_ids(inst: np.ndarray) -> tuple[np.ndarray, list[SegmentInfo]]:
    """instanceIds [H, W] -> (segment ids int32 with void = 0, segments) like createPanopticImgs."""
    ids = np.zeros(inst.shape, dtype=np.int32)
    segments: list[SegmentInfo] = []
    for value in np.unique(inst):
        v = int(value)
        label_id = v // 1000 if v >= 1000 else v
        train_id = int(LABEL_TO_TRAIN[label_id]) if label_id < 256 else 255
        if train_id == 255:
            continue
        crowd = v < 1000 and train_id in THINGS
        ids[inst == value] = v
        segments.append(SegmentInfo(v, train_id, crowd))
    return ids, segments


class Cityscapes(DatasetSource):
    name = "cityscapes"
    meta = CITYSCAPES

    def __init__(self, root: Path, split: str) -> None:
        super().__init__(root, split)
        layout = LAYOUT.format(root=self.root, split=split)
        image_dir = self.root / "leftImg8bit" / split
        if not image_dir.is_dir():
            raise PemError(
                f"{image_dir} does not exist: --data must be a Cityscapes root laid out as {layout}"
            )
        images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
        if not images:
            raise PemError(f"no *_leftImg8bit.png under {image_dir}/<city>/: expected {layout}")
        for img in images:
            stem = img.name.removesuffix("_leftImg8bit.png")
            gt = self.root / "gtFine" / split / img.parent.name
            label = gt / f"{stem}_gtFine_labelIds.png"
            inst = gt / f"{stem}_gtFine_instanceIds.png"
            for p in (label, inst):
                if not p.is_file():
                    raise PemError(f"{p} is missing (ground truth of {img.name}): expected {layout}")
            self.records.append(Record(stem=f"{stem}_leftImg8bit", image=img, semantic=label, panoptic=inst))

    def ground_truth(self, record: Record, panoptic: bool) -> GroundTruth:
        assert record.semantic is not None and record.panoptic is not None
        labels = read_label(record.semantic)
        semantic = LABEL_TO_TRAIN[labels.astype(np.int64).clip(0, 255)]
        if not panoptic:
            return GroundTruth(semantic)
        ids, segments = panoptic_from_instance_ids(read_label(record.panoptic))
        return GroundTruth(semantic, ids, segments)
