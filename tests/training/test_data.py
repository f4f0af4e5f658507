"""Datasets in their real layouts, augmentation and targets."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pem_rt.errors import PemError
from pem_rt.segments import id_to_rgb
from training.data.loader import TrainDataset, TrainSampler, collate_train, open_dataset
from training.data.records import IGNORE, SegmentInfo
from training.data.targets import panoptic_targets, semantic_targets
from training.data.transforms import AugmentConfig, augment, color_jitter_ssd
from training.dataset_meta import ADE20K, CITYSCAPES, COCO_PANOPTIC
from training.make_synthetic import main as synthetic_main


def test_synthetic_writes_real_cityscapes_files(tmp_path: Path) -> None:
    assert synthetic_main(["--out", str(tmp_path), "--train", "3", "--val", "2", "--size", "64x128"]) == 0
    images = sorted((tmp_path / "leftImg8bit" / "train").glob("*/*_leftImg8bit.png"))
    assert len(images) == 3 and len(list((tmp_path / "leftImg8bit" / "val").glob("*/*.png"))) == 2
    stem = images[0].name.removesuffix("_leftImg8bit.png")
    gt = tmp_path / "gtFine" / "train" / images[0].parent.name
    label = cv2.imread(str(gt / f"{stem}_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED)
    inst = cv2.imread(str(gt / f"{stem}_gtFine_instanceIds.png"), cv2.IMREAD_UNCHANGED)
    assert label.dtype == np.uint8 and inst.dtype == np.uint16 and label.shape == (64, 128)
    assert {7, 8, 11, 23}.issubset(set(np.unique(label).tolist()))
    things = inst[inst >= 1000]
    assert len(things) and set((things // 1000).tolist()) <= {24, 26}
    # instanceIds agree with labelIds everywhere, as in Cityscapes
    np.testing.assert_array_equal(np.where(inst >= 1000, inst // 1000, inst), label)


def test_cityscapes_ground_truth(synthetic_root: Path) -> None:
    source = open_dataset("cityscapes", synthetic_root, "val", panoptic=True)
    assert len(source) == 6 and source.meta is CITYSCAPES
    rec = source.records[0]
    assert rec.stem.endswith("_leftImg8bit")
    gt = source.ground_truth(rec, panoptic=True)
    labels = cv2.imread(str(rec.semantic), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(gt.semantic).tolist()) <= {0, 1, 2, 8, 10, 11, 13, IGNORE}
    assert (gt.semantic[labels == 7] == 0).all() and (gt.semantic[labels == 1] == IGNORE).all()
    assert gt.panoptic is not None and gt.segments is not None
    for s in gt.segments:
        assert (gt.semantic[gt.panoptic == s.id] == s.category).all()
        assert s.iscrowd == (s.id < 1000 and s.category in CITYSCAPES.thing_ids)
    assert (gt.panoptic[labels == 1] == 0).all()  # ego vehicle is void


def test_augment_is_deterministic_and_keeps_labels(synthetic_root: Path) -> None:
    source = open_dataset("cityscapes", synthetic_root, "train", panoptic=False)
    ds = TrainDataset(source, AugmentConfig((48, 96), base_size=64), panoptic=False)
    a, b, c = ds[(0, 123)], ds[(0, 123)], ds[(0, 124)]
    assert a["image"].shape[0] == 3 and a["image"].shape[1] <= 48 and a["image"].shape[2] <= 96
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["masks"], b["masks"])
    assert not (a["image"].shape == c["image"].shape and np.array_equal(a["image"], c["image"]))
    masks = a["masks"].numpy()
    assert (masks.sum(0) <= 1).all()  # one class per pixel
    assert set(a["labels"].tolist()) <= {0, 1, 2, 8, 10, 11, 13}


def test_augment_geometry_and_sizes() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (100, 200, 3), dtype=np.uint8)
    label = (np.arange(200)[None, :] // 20).repeat(100, 0).astype(np.int32)
    cfg = AugmentConfig((64, 128), base_size=100, scale_range=(0.5, 2.0), color=False)
    assert cfg.short_sides() == [int(100 * (0.5 + 0.1 * i)) for i in range(16)]
    for seed in range(10):
        img, (lab,) = augment(image, [label], cfg, np.random.default_rng(seed))
        assert img.shape[:2] == lab.shape and img.shape[0] <= 64 and img.shape[1] <= 128
        assert set(np.unique(lab).tolist()) <= set(range(10))  # nearest: no blended label values


def test_color_jitter_changes_colour_not_shape() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    outs = [color_jitter_ssd(image, np.random.default_rng(s)) for s in range(8)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outs)
    assert sum(not np.array_equal(o, image) for o in outs) >= 6


def test_targets_semantic_and_panoptic() -> None:
    label = np.array([[0, 0, 255], [3, 3, 0]], dtype=np.uint8)
    t = semantic_targets(label)
    assert t["labels"].tolist() == [0, 3] and t["masks"].shape == (2, 2, 3)
    assert t["masks"][0].sum() == 3 and not t["masks"][:, 0, 2].any()
    ids = np.array([[5, 5, 0], [7, 9, 9]], dtype=np.int32)
    segs = [SegmentInfo(5, 2), SegmentInfo(7, 4, iscrowd=True), SegmentInfo(9, 4), SegmentInfo(11, 1)]
    p = panoptic_targets(ids, segs)
    assert p["labels"].tolist() == [2, 4]  # crowd and absent (cropped-away) segments dropped
    assert p["masks"][1].tolist() == [[False, False, False], [False, True, True]]


def test_collate_pads_to_multiple_of_32() -> None:
    import torch

    a = {"image": torch.zeros(3, 40, 70, dtype=torch.uint8), "labels": torch.tensor([1]),
         "masks": torch.ones(1, 40, 70, dtype=torch.bool)}  # fmt: skip
    b = {"image": torch.zeros(3, 64, 50, dtype=torch.uint8), "labels": torch.tensor([2, 3]),
         "masks": torch.ones(2, 64, 50, dtype=torch.bool)}  # fmt: skip
    batch = collate_train([a, b])
    assert batch["images"].shape == (2, 3, 64, 96)
    assert batch["targets"][0]["masks"].shape == (1, 64, 96) and batch["targets"][0]["masks"].sum() == 40 * 70


def test_sampler_shards_and_resumes() -> None:
    full = TrainSampler(10, seed=0)
    full.set_epoch(3)
    order = list(full)
    assert sorted(i for i, _ in order) == list(range(10))
    skipped = TrainSampler(10, seed=0)
    skipped.set_epoch(3, skip=4)
    assert list(skipped) == order[4:]
    ranks = [TrainSampler(10, seed=0, rank=r, world=2) for r in range(2)]
    for r in ranks:
        r.set_epoch(3)
    shards = [list(r) for r in ranks]
    assert sorted(i for s in shards for i, _ in s) == list(range(10))
    other = TrainSampler(10, seed=0)
    other.set_epoch(4)
    assert list(other) != order


def _write_ade(root: Path, panoptic: bool) -> np.ndarray:
    base = root / "ADEChallengeData2016"
    for d in ("images/validation", "annotations/validation"):
        (base / d).mkdir(parents=True)
    label = np.zeros((32, 48), np.uint8)
    label[:16] = 3  # 'floor' (category id 3 -> class 2)
    label[16:, :24] = 13  # 'person'
    cv2.imwrite(str(base / "images/validation/ADE_val_00000001.jpg"), np.full((32, 48, 3), 128, np.uint8))
    cv2.imwrite(str(base / "annotations/validation/ADE_val_00000001.png"), label)
    if panoptic:
        ids = np.zeros((32, 48), np.int32)
        ids[:16], ids[16:, :24] = 1000, 2000
        (base / "ade20k_panoptic_val").mkdir()
        cv2.imwrite(str(base / "ade20k_panoptic_val/ADE_val_00000001.png"), id_to_rgb(ids)[:, :, ::-1])
        segments = [
            {"id": 1000, "category_id": 3, "iscrowd": 0},
            {"id": 2000, "category_id": 12, "iscrowd": 0},
        ]
        ann = {
            "images": [{"id": "ADE_val_00000001", "file_name": "ADE_val_00000001.jpg"}],
            "annotations": [
                {
                    "image_id": "ADE_val_00000001",
                    "file_name": "ADE_val_00000001.png",
                    "segments_info": segments,
                }
            ],
        }
        (base / "ade20k_panoptic_val.json").write_text(json.dumps(ann))
    return label


def test_ade20k_semantic_and_panoptic(tmp_path: Path) -> None:
    label = _write_ade(tmp_path, panoptic=True)
    source = open_dataset("ade20k", tmp_path, "val", panoptic=False)
    assert source.meta is ADE20K and len(source) == 1
    sem = source.ground_truth(source.records[0], panoptic=False).semantic
    np.testing.assert_array_equal(sem, np.where(label == 0, 255, label.astype(int) - 1))
    pan = open_dataset("ade20k", tmp_path, "val", panoptic=True)
    gt = pan.ground_truth(pan.records[0], panoptic=True)
    assert gt.segments == [SegmentInfo(1000, 3), SegmentInfo(2000, 12)]
    assert ADE20K.classes[12] == "person" and (gt.semantic[16:, :24] == 12).all()


def test_coco_panoptic_layout(tmp_path: Path) -> None:
    (tmp_path / "annotations" / "panoptic_val2017").mkdir(parents=True)
    (tmp_path / "val2017").mkdir()
    ids = np.zeros((20, 30), np.int32)
    ids[:10], ids[10:, :15], ids[10:, 15:] = 3, 1_000_001, 42
    cv2.imwrite(str(tmp_path / "val2017/000000000139.jpg"), np.zeros((20, 30, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "annotations/panoptic_val2017/000000000139.png"), id_to_rgb(ids)[:, :, ::-1])
    segs = [{"id": 3, "category_id": 187, "iscrowd": 0}, {"id": 1_000_001, "category_id": 1, "iscrowd": 0},
            {"id": 42, "category_id": 1, "iscrowd": 1}]  # fmt: skip
    ann = {
        "images": [{"id": 139, "file_name": "000000000139.jpg"}],
        "annotations": [{"image_id": 139, "file_name": "000000000139.png", "segments_info": segs}],
    }
    (tmp_path / "annotations" / "panoptic_val2017.json").write_text(json.dumps(ann))
    source = open_dataset("coco-panoptic", tmp_path, "val", panoptic=True)
    gt = source.ground_truth(source.records[0], panoptic=True)
    sky = COCO_PANOPTIC.dataset_ids.index(187)
    assert gt.segments == [SegmentInfo(3, sky), SegmentInfo(1_000_001, 0), SegmentInfo(42, 0, True)]
    assert gt.panoptic is not None and (gt.panoptic == ids).all()
    t = panoptic_targets(gt.panoptic, gt.segments)
    assert t["labels"].tolist() == [sky, 0]


@pytest.mark.parametrize("name", ["cityscapes", "ade20k", "coco-panoptic"])
def test_wrong_root_names_expected_layout(tmp_path: Path, name: str) -> None:
    with pytest.raises(PemError) as e:
        open_dataset(name, tmp_path, "val", panoptic=False)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path) in msg
    expected = {
        "cityscapes": "gtFine",
        "ade20k": "annotations/validation",
        "coco-panoptic": "panoptic_val2017",
    }
    assert expected[name] in msg


def test_missing_ground_truth_file_is_named(synthetic_root: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "cs"
    shutil.copytree(synthetic_root, root)
    victim = next((root / "gtFine" / "val").glob("*/*_instanceIds.png"))
    victim.unlink()
    with pytest.raises(PemError, match=victim.name):
        open_dataset("cityscapes", root, "val", panoptic=False)
