"""A synthetic street-scene dataset written as real Cityscapes files (tests and the demo).

Each scene has sky, a skyline of building and vegetation blocks, a road in perspective between two
sidewalks, cars on the road and persons on the sidewalks (instances), sometimes a crowd of persons
(a labelId-only region, as Cityscapes marks groups) and a strip of ego vehicle at the bottom (void).
Regions are textured with their class colour, per-image lighting, per-instance colour shifts and pixel
noise, so a model has to learn colour and shape, not look up exact values.

Files (the layout :mod:`training.data.cityscapes` reads, city ``synth``)::

    OUT/leftImg8bit/{train,val}/synth/synth_000000_NNNNNN_leftImg8bit.png
    OUT/gtFine/{train,val}/synth/synth_000000_NNNNNN_gtFine_labelIds.png      (uint8)
    OUT/gtFine/{train,val}/synth/synth_000000_NNNNNN_gtFine_instanceIds.png   (uint16)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from training.dataset_meta import CITYSCAPES

# Cityscapes labelIds used by the scenes
EGO, ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR = 1, 7, 8, 11, 21, 23, 24, 26
CLASSES_USED = ("road", "sidewalk", "building", "vegetation", "sky", "person", "car")
_COLOUR = {
    lid: CITYSCAPES.palette[CITYSCAPES.dataset_ids.index(lid)]
    for lid in (ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR)
}
_COLOUR[EGO] = (40, 40, 40)
CITY = "synth"


def _stuff(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Label map of the background: sky, skyline blocks, road and sidewalks, ego vehicle strip."""
    label = np.full((h, w), SKY, dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    horizon = int(h * rng.uniform(0.45, 0.6))
    x = 0
    while x < w:
        bw = int(w * rng.uniform(0.08, 0.25))
        cls = BUILDING if rng.random() < 0.6 else VEGETATION
        top = h * rng.uniform(0.08, 0.35)
        cols = slice(x, min(w, x + bw))
        if cls == BUILDING:
            block = yy[:, cols] >= top
        else:
            bump = np.sin((xx[:, cols] - x) / max(bw, 1) * np.pi) * h * rng.uniform(0.03, 0.1)
            block = yy[:, cols] >= top + h * 0.08 - bump
        label[:, cols][block & (yy[:, cols] < horizon)] = cls
        x += bw
    centre = w * rng.uniform(0.35, 0.65)
    t = np.clip((yy - horizon) / max(h - horizon, 1), 0, 1)
    half = w * (0.04 + 0.5 * t)
    ground = yy >= horizon
    label[ground] = SIDEWALK
    label[ground & (np.abs(xx - centre) < half)] = ROAD
    ego_top = h - int(h * rng.uniform(0.04, 0.08))
    hood = ego_top + (np.abs(xx - w / 2) / (w / 2)) ** 2 * h * 0.03
    label[yy >= hood] = EGO
    return label


def _objects(label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[np.ndarray, int]]]:
    """Paint cars and persons over ``label``; returns instanceIds and (mask, instance id) pairs."""
    h, w = label.shape
    inst = label.astype(np.uint16)
    yy, xx = np.mgrid[0:h, 0:w]
    objects: list[tuple[np.ndarray, int]] = []
    road_rows = np.nonzero((label == ROAD).any(axis=1))[0]
    if len(road_rows) == 0:
        return inst, objects
    top, bottom = road_rows[0], min(road_rows[-1], int(h * 0.9))
    for k in range(int(rng.integers(1, 4))):
        y1 = int(rng.uniform(top + 0.15 * (bottom - top), bottom))
        scale = (y1 - top) / max(bottom - top, 1)
        cw = max(6, int(w * (0.06 + 0.18 * scale) * rng.uniform(0.8, 1.2)))
        ch = max(4, int(cw * rng.uniform(0.45, 0.6)))
        road_x = np.nonzero(label[y1 - 1] == ROAD)[0]
        if len(road_x) == 0:
            continue
        x0 = int(rng.choice(road_x)) - cw // 2
        body = (yy >= y1 - ch * 0.6) & (yy < y1) & (xx >= x0) & (xx < x0 + cw)
        roof = (yy >= y1 - ch) & (yy < y1 - ch * 0.6) & (xx >= x0 + cw * 0.2) & (xx < x0 + cw * 0.8)
        mask = body | roof
        objects.append((mask, CAR * 1000 + k))
    for k in range(int(rng.integers(1, 4))):
        side = np.nonzero(label == SIDEWALK)
        if len(side[0]) == 0:
            break
        i = int(rng.integers(len(side[0])))
        feet_y, cx = int(side[0][i]), int(side[1][i])
        ph = max(8, int(h * rng.uniform(0.2, 0.32) * (0.6 + 0.6 * feet_y / h)))
        pw = ph * 0.42
        body = ((xx - cx) / (pw / 2)) ** 2 + ((yy - (feet_y - ph * 0.4)) / (ph * 0.4)) ** 2 <= 1
        head = ((xx - cx) ** 2 + (yy - (feet_y - ph * 0.88)) ** 2) <= (ph * 0.12) ** 2
        objects.append((body | head, PERSON * 1000 + k))
    if rng.random() < 0.25:  # a crowd: Cityscapes marks groups with the bare labelId
        cx, cy = int(rng.uniform(0.1, 0.9) * w), int(h * rng.uniform(0.55, 0.75))
        crowd = (np.abs(xx - cx) < w * 0.06) & (yy > cy - h * 0.12) & (yy < cy)
        objects.append((crowd & (label == SIDEWALK), PERSON))
    order = rng.permutation(len(objects))  # random occlusion order
    for i in order:
        mask, iid = objects[i]
        mask = mask & (label != EGO)
        label[mask] = iid // 1000 if iid >= 1000 else iid
        inst[mask] = iid
    return inst, objects


def _texture(label: np.ndarray, inst: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB image: class colours shifted per image and per instance, plus low- and high-frequency noise."""
    h, w = label.shape
    img = np.zeros((h, w, 3), dtype=np.float32)
    for lid, colour in _COLOUR.items():
        img[label == lid] = np.array(colour, dtype=np.float32) + rng.normal(0, 12, 3)
    for iid in np.unique(inst[inst >= 1000]):
        img[inst == iid] += rng.normal(0, 18, 3).astype(np.float32)
    low = cv2.resize(rng.normal(0, 14, (max(h // 16, 2), max(w // 16, 2), 3)).astype(np.float32), (w, h))
    img = img * rng.uniform(0.8, 1.2) + low + rng.normal(0, 10, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_scene(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: (RGB uint8 [h, w, 3], labelIds uint8 [h, w], instanceIds uint16 [h, w])."""
    label = _stuff(h, w, rng)
    inst, _ = _objects(label, rng)
    return _texture(label, inst, rng), label, inst


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
