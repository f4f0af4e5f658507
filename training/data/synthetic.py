"""The synthetic street-scene dataset, written as real Cityscapes files (tests and the demo).

Scenes are frames of the stream runtime's synthetic street (pem_rt/synthetic.py: sky, buildings and
trees, sidewalk, road, cars and people; sometimes a crowd of people, sometimes an ego-vehicle strip), one
layout seed and one moment per image, so a model trained on this dataset segments the demo's stream.

Files (the layout :mod:`training.data.cityscapes` reads, city ``synth``)::

    OUT/leftImg8bit/{train,val}/synth/synth_000000_NNNNNN_leftImg8bit.png
    OUT/gtFine/{train,val}/synth/synth_000000_NNNNNN_gtFine_labelIds.png      (uint8)
    OUT/gtFine/{train,val}/synth/synth_000000_NNNNNN_gtFine_instanceIds.png   (uint16)

labelIds are Cityscapes' (ego vehicle = 1); instanceIds follow Cityscapes: ``labelId * 1000 + k`` for a
car or person instance, the bare labelId for stuff and for crowd regions.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pem_rt.segments import VOID
from pem_rt.synthetic import SyntheticScene
from training.dataset_meta import CITYSCAPES

EGO_VEHICLE = 1  # Cityscapes labelId
CLASSES_USED = ("road", "sidewalk", "building", "vegetation", "sky", "person", "car")
CITY = "synth"
_LABEL_ID = np.full(256, EGO_VEHICLE, dtype=np.uint16)  # trainId -> labelId (void -> ego vehicle)
_LABEL_ID[: len(CITYSCAPES.dataset_ids)] = CITYSCAPES.dataset_ids
THING_TRAIN_IDS = np.array(CITYSCAPES.thing_ids)


def make_scene(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: (RGB uint8 [h, w, 3], labelIds uint8 [h, w], instanceIds uint16 [h, w])."""
    scene = SyntheticScene(
        h, w, seed=int(rng.integers(1 << 31)), crowd=bool(rng.uniform() < 0.35), ego=bool(rng.uniform() < 0.5)
    )
    index = int(rng.integers(0, 900))
    bgr = scene.frame(index)
    train_ids, instances = scene.annotations(index)
    gain, bias = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)  # per-image lighting
    rgb = np.clip(bgr[..., ::-1].astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    label_ids = _LABEL_ID[train_ids]
    things = np.isin(train_ids, THING_TRAIN_IDS) & (instances > 0) & (train_ids != VOID)
    instance_ids = np.where(things, label_ids.astype(np.int64) * 1000 + instances, label_ids)
    return rgb, label_ids.astype(np.uint8), instance_ids.astype(np.uint16)


def write_dataset(
    out: str | Path, train: int, val: int, size: tuple[int, int], seed: int = 0
) -> dict[str, int]:
    """Write ``train`` + ``val`` scenes of ``size`` (H, W) in the Cityscapes layout under ``out``."""
    out = Path(out)
    counts = {}
    for split, n, offset in (("train", train, 0), ("val", val, 1)):
        rng = np.random.default_rng([seed, offset])
        img_dir = out / "leftImg8bit" / split / CITY
        gt_dir = out / "gtFine" / split / CITY
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rgb, label, inst = make_scene(size[0], size[1], rng)
            stem = f"{CITY}_000000_{i:06d}"
            png = [cv2.IMWRITE_PNG_COMPRESSION, 1]
            cv2.imwrite(str(img_dir / f"{stem}_leftImg8bit.png"), rgb[:, :, ::-1], png)
            cv2.imwrite(str(gt_dir / f"{stem}_gtFine_labelIds.png"), label, png)
            cv2.imwrite(str(gt_dir / f"{stem}_gtFine_instanceIds.png"), inst, png)
        counts[split] = n
    return counts
