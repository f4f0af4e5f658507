"""ADE20K SceneParsing (ADEChallengeData2016), semantic and panoptic.

Layout (``ROOT`` = ADEChallengeData2016, or the folder that holds it)::

    ROOT/images/{training,validation}/*.jpg
    ROOT/annotations/{training,validation}/*.png        (0 = void, 1..150 = classes)
    ROOT/ade20k_panoptic_{train,val}.json + ROOT/ade20k_panoptic_{train,val}/*.png   (panoptic only;
        written by Mask2Former's datasets/prepare_ade20k_pan_seg.py, category ids 0..149)

Splits are named ``train``/``val`` (``training``/``validation`` are accepted too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pem_rt.errors import PemError
from training.data.coco_panoptic import panoptic_ground_truth, read_panoptic_json
from training.data.records import DatasetSource, GroundTruth, Record, read_label
from training.dataset_meta import ADE20K as ADE20K_META

SPLITS = {"train": "training", "training": "training", "val": "validation", "validation": "validation"}
# 0 (void) -> 255, k -> k - 1
LABEL_TO_TRAIN = ((np.arange(256) - 1) % 256).astype(np.uint8)


class ADE20K(DatasetSource):
    name = "ade20k"
    meta = ADE20K_META

    def __init__(self, root: Path, split: str, panoptic: bool = False) -> None:
        super().__init__(root, split)
        if (self.root / "ADEChallengeData2016").is_dir():
            self.root = self.root / "ADEChallengeData2016"
        if split not in SPLITS:
            raise PemError(f"ADE20K has splits train and val, not '{split}'")
        folder = SPLITS[split]
        short = "train" if folder == "training" else "val"
        layout = f"{self.root}/images/{folder}/*.jpg with {self.root}/annotations/{folder}/*.png" + (
            f" and {self.root}/ade20k_panoptic_{short}.json + ade20k_panoptic_{short}/" if panoptic else ""
        )
        image_dir = self.root / "images" / folder
        if not image_dir.is_dir():
            raise PemError(f"{image_dir} does not exist: --data must be an ADE20K root laid out as {layout}")
        if panoptic:
            json_path = self.root / f"ade20k_panoptic_{short}.json"
            if not json_path.is_file():
                raise PemError(f"{json_path} does not exist: expected {layout}")
            category_map = {i: i for i in range(len(self.meta.classes))}
            self.records = read_panoptic_json(
                json_path, self.root / f"ade20k_panoptic_{short}", image_dir, category_map, layout
            )
            return
        images = sorted(image_dir.glob("*.jpg"))
        if not images:
            raise PemError(f"no *.jpg in {image_dir}: expected {layout}")
        for img in images:
            label = self.root / "annotations" / folder / f"{img.stem}.png"
            if not label.is_file():
                raise PemError(f"{label} is missing (ground truth of {img.name}): expected {layout}")
            self.records.append(Record(stem=img.stem, image=img, semantic=label))

    def ground_truth(self, record: Record, panoptic: bool) -> GroundTruth:
        if record.segments is not None:
            return panoptic_ground_truth(record, panoptic)
        if panoptic:
            raise PemError("ADE20K panoptic needs ade20k_panoptic_{train,val}.json; use --task panoptic")
        assert record.semantic is not None
        return GroundTruth(LABEL_TO_TRAIN[read_label(record.semantic).astype(np.int64).clip(0, 255)])
