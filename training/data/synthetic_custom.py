"""A synthetic dataset with its own classes in each dataset.yaml layout (README example, tests).

The scenes are the synthetic street (pem_rt/synthetic.py), relabelled for a drivable-area camera:

- ``drivable5``: drivable, sidewalk, background (buildings, trees, sky), pedestrian, vehicle;
- ``street4``: drivable and surroundings (stuff), pedestrian and vehicle (things), for panoptic.

Layouts (training/data/spec.py): ``folders`` (PNG images, class-index PNG masks), ``coco`` (JPEG images
and a COCO instances json per split: a polygon per pedestrian and vehicle, crowds and the surroundings
as compressed RLE, the sidewalk as uncompressed RLE, the drivable area as polygons; category ids start
at 1 as annotation tools write them) and ``coco-panoptic`` (RGB segment-id PNGs and a panoptic json).
The ego-vehicle strip of some scenes is void (unannotated).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pem_rt.files import atomic_write_text
from pem_rt.segments import VOID, id_to_rgb
from pem_rt.synthetic import BUILDING, CAR, PERSON, ROAD, SIDEWALK, SKY, VEGETATION
from training.data.synthetic import make_scene
from training.dataset_meta import CITYSCAPES

CLASS_SETS: dict[str, dict[str, Any]] = {
    "drivable5": {
        "names": ["drivable", "sidewalk", "background", "pedestrian", "vehicle"],
        "colors": [[128, 64, 128], [244, 35, 232], [90, 120, 90], [220, 20, 60], [0, 0, 142]],
        "things": ["pedestrian", "vehicle"],
        "map": {ROAD: 0, SIDEWALK: 1, BUILDING: 2, VEGETATION: 2, SKY: 2, PERSON: 3, CAR: 4},
    },
    "street4": {
        "names": ["drivable", "surroundings", "pedestrian", "vehicle"],
        "colors": [[128, 64, 128], [90, 120, 90], [220, 20, 60], [0, 0, 142]],
        "things": ["pedestrian", "vehicle"],
        "map": {ROAD: 0, SIDEWALK: 1, BUILDING: 1, VEGETATION: 1, SKY: 1, PERSON: 2, CAR: 3},
    },
}
FORMATS = ("folders", "coco", "coco-panoptic")
_TRAIN_ID = {lid: i for i, lid in enumerate(CITYSCAPES.dataset_ids)}


def scene(
    h: int, w: int, rng: np.random.Generator, lut: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(RGB uint8, class map uint8 with void 255, instance ids int32: > 0 for things, 0 for crowds/stuff)."""
    rgb, label_ids, instance_ids = make_scene(h, w, rng)
    train_ids = np.array([_TRAIN_ID.get(int(v), VOID) for v in range(256)], dtype=np.int64)[label_ids]
    classes = lut[train_ids]
    inst = np.where(instance_ids >= 1000, instance_ids.astype(np.int32) % 1000, 0)
    return rgb, classes, inst


def _lut(class_map: dict[int, int]) -> np.ndarray:
    lut = np.full(256, VOID, dtype=np.uint8)
    for k, v in class_map.items():
        lut[k] = v
    return lut


def write_custom_dataset(
    out: str | Path,
    layout: str,
    train: int,
    val: int,
    size: tuple[int, int],
    seed: int = 0,
    classes: str = "drivable5",
) -> dict[str, int]:
    """Write ``train`` + ``val`` scenes of ``size`` (H, W) in ``layout`` with its dataset.yaml."""
    out = Path(out)
    spec = CLASS_SETS[classes]
    lut = _lut(spec["map"])
    things = [spec["names"].index(t) for t in spec["things"]]
    counts = {}
    for split, n, offset in (("train", train, 0), ("val", val, 1)):
        rng = np.random.default_rng([seed, offset, 7])
        writer = _Writer(out, layout, split, spec["names"], things)
        for i in range(n):
            writer.add(f"{i:05d}", *scene(size[0], size[1], rng, lut))
        writer.close()
        counts[split] = n
    lines = [
        f"# synthetic drivable-area scenes ({classes}), written by `pem synthetic --format {layout}`",
        f"name: {classes}",
        f"format: {layout}",
        f"names: {json.dumps(spec['names'])}",
        f"colors: {json.dumps(spec['colors'])}",
        f"things: {json.dumps(spec['things'])}",
        "ignore_index: 255",
    ]
    atomic_write_text(out / "dataset.yaml", "\n".join(lines) + "\n")
    return counts


class _Writer:
    """Writes one split's images and annotations in one layout."""

    def __init__(self, out: Path, layout: str, split: str, names: list[str], things: list[int]) -> None:
        self.out, self.layout, self.split, self.things = out, layout, split, things
        self.images = out / "images" / split
        self.images.mkdir(parents=True, exist_ok=True)
        cats = [{"id": k + 1, "name": n, "isthing": int(k in things)} for k, n in enumerate(names)]
        self.coco: dict[str, Any] = {"images": [], "annotations": [], "categories": cats}
        if layout == "folders":
            (out / "masks" / split).mkdir(parents=True, exist_ok=True)
        if layout == "coco-panoptic":
            (out / "annotations" / f"panoptic_{split}").mkdir(parents=True, exist_ok=True)

    def add(self, stem: str, rgb: np.ndarray, classes: np.ndarray, inst: np.ndarray) -> None:
        png = [cv2.IMWRITE_PNG_COMPRESSION, 1]
        if self.layout == "folders":
            cv2.imwrite(str(self.images / f"{stem}.png"), rgb[:, :, ::-1], png)
            cv2.imwrite(str(self.out / "masks" / self.split / f"{stem}.png"), classes, png)
            return
        image_id = len(self.coco["images"]) + 1
        name = f"{stem}.jpg" if self.layout == "coco" else f"{stem}.png"
        cv2.imwrite(
            str(self.images / name),
            rgb[:, :, ::-1],
            [cv2.IMWRITE_JPEG_QUALITY, 95] if name.endswith(".jpg") else png,
        )
        h, w = classes.shape
        self.coco["images"].append({"id": image_id, "file_name": name, "height": h, "width": w})
        if self.layout == "coco":
            self._instances(image_id, classes, inst)
        else:
            self._panoptic(image_id, stem, classes, inst)

    def _segments(self, classes: np.ndarray, inst: np.ndarray) -> list[tuple[int, bool, np.ndarray]]:
        """(class, is crowd, mask) per thing instance, per crowd region and per stuff class present."""
        out = []
        for k in np.unique(classes):
            k = int(k)
            if k == VOID:
                continue
            region = classes == k
            if k not in self.things:
                out.append((k, False, region))
                continue
            for iid in np.unique(inst[region]):
                out.append((k, iid == 0, region & (inst == iid)))
        return out

    def _instances(self, image_id: int, classes: np.ndarray, inst: np.ndarray) -> None:
        for k, crowd, mask in self._segments(classes, inst):
            ann: dict[str, Any] = {"image_id": image_id, "category_id": k + 1, "iscrowd": int(crowd)}
            fortran = np.asfortranarray(mask.astype(np.uint8))
            if (k in self.things and not crowd) or k == 0:
                contours, _ = cv2.findContours(
                    fortran.copy(order="C"), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
                )
                polys = [c.reshape(-1).astype(float).tolist() for c in contours if cv2.contourArea(c) > 0]
                ann["segmentation"] = polys or _compressed_rle(fortran)  # a line-thin instance: RLE
            elif k == 1 and not crowd and k not in self.things:
                ann["segmentation"] = _uncompressed_rle(mask)
            else:
                ann["segmentation"] = _compressed_rle(fortran)
            ys, xs = np.nonzero(mask)
            ann["area"] = int(mask.sum())
            ann["bbox"] = [
                int(xs.min()),
                int(ys.min()),
                int(xs.max() - xs.min() + 1),
                int(ys.max() - ys.min() + 1),
            ]
            ann["id"] = len(self.coco["annotations"]) + 1
            self.coco["annotations"].append(ann)

    def _panoptic(self, image_id: int, stem: str, classes: np.ndarray, inst: np.ndarray) -> None:
        ids = np.zeros(classes.shape, dtype=np.int32)
        info = []
        for n, (k, crowd, mask) in enumerate(self._segments(classes, inst), start=1):
            ids[mask] = n
            info.append({"id": n, "category_id": k + 1, "iscrowd": int(crowd), "area": int(mask.sum())})
        name = f"{stem}.png"
        folder = self.out / "annotations" / f"panoptic_{self.split}"
        cv2.imwrite(str(folder / name), id_to_rgb(ids)[:, :, ::-1])
        self.coco["annotations"].append({"image_id": image_id, "file_name": name, "segments_info": info})

    def close(self) -> None:
        if self.layout == "folders":
            return
        name = f"{self.split}.json" if self.layout == "coco" else f"panoptic_{self.split}.json"
        atomic_write_text(self.out / "annotations" / name, json.dumps(self.coco))


def _compressed_rle(fortran: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(fortran)
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed RLE: run lengths of the column-major mask, starting with a run of zeros."""
    flat = mask.astype(np.uint8).reshape(-1, order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    return {"size": list(mask.shape), "counts": [int(r) for r in runs]}


SHADE_NAMES = [f"shade{k}" for k in range(6)]
SHADE_BASE, SHADE_STEP, SHADE_NOISE = 88, 8, 2.0  # grey levels: class k is 88 + 8 k, noise sigma 2


def shades_scene(
    h: int, w: int, rng: np.random.Generator, step: int = SHADE_STEP, noise: float = SHADE_NOISE
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8, class map uint8): rectangles of six grey shades ``step`` levels apart with a little
    noise, so the classes' scores differ by little (a dataset made to be sensitive to INT8)."""
    k = len(SHADE_NAMES)
    classes = np.full((h, w), rng.integers(k), dtype=np.uint8)
    for _ in range(int(rng.integers(4, 9))):
        y0, x0 = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        y1, x1 = int(rng.integers(y0 + 8, h + 1)), int(rng.integers(x0 + 8, w + 1))
        classes[y0:y1, x0:x1] = rng.integers(k)
    grey = SHADE_BASE + step * classes.astype(np.float32)
    grey = grey + rng.normal(0.0, noise, (h, w)).astype(np.float32)
    rgb = np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    return rgb, classes


def write_shades_dataset(
    out: str | Path,
    train: int,
    val: int,
    size: tuple[int, int],
    seed: int = 0,
    step: int = SHADE_STEP,
    noise: float = SHADE_NOISE,
) -> dict[str, int]:
    """Write ``train`` + ``val`` :func:`shades_scene` images (shades ``step`` grey levels apart) in the
    ``folders`` layout + dataset.yaml."""
    out = Path(out)
    counts = {}
    for split, n, offset in (("train", train, 0), ("val", val, 1)):
        rng = np.random.default_rng([seed, offset, 11])
        writer = _Writer(out, "folders", split, SHADE_NAMES, [])
        for i in range(n):
            rgb, classes = shades_scene(size[0], size[1], rng, step, noise)
            writer.add(f"{i:05d}", rgb, classes, np.zeros(classes.shape, np.int32))
        counts[split] = n
    colors = [[40 * k, 40 * k, 255 - 40 * k] for k in range(len(SHADE_NAMES))]
    lines = [
        f"# six grey shades {step} levels apart (INT8-sensitive), written by write_shades_dataset",
        "name: shades6",
        "format: folders",
        f"names: {json.dumps(SHADE_NAMES)}",
        f"colors: {json.dumps(colors)}",
        "things: []",
        "ignore_index: 255",
    ]
    atomic_write_text(out / "dataset.yaml", "\n".join(lines) + "\n")
    return counts
