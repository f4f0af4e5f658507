"""mIoU and PQ equal the official evaluators on the same predictions.

References: cityscapesscripts' evalPixelLevelSemanticLabeling (mIoU) and evalPanopticSemanticLabeling
(PQ). panopticapi is not on PyPI (CI reaches only package registries) and its PyPI re-packaging pins
numpy < 2; cityscapesscripts' panoptic evaluator is panopticapi's pq_compute code (same matching, void
and crowd rules) shipped on PyPI, so it stands for panopticapi here. The ground-truth panoptic files for
it are made by cityscapesscripts' own createPanopticImgs from the instanceIds, which also checks our
reading of instanceIds.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pem_rt.segments import id_to_rgb
from training.data.cityscapes import Cityscapes
from training.data.records import SegmentInfo
from training.dataset_meta import CITYSCAPES
from training.evaluate import main as evaluate_main
from training.metrics import PanopticMetric, SemanticMetric

TRAIN_TO_LABEL = np.array(list(CITYSCAPES.dataset_ids) + [0] * (256 - 19), dtype=np.uint8)
TRAIN_TO_LABEL[255] = 0  # void prediction -> 'unlabeled'


def _perturb_semantic(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pred = np.roll(gt, (int(rng.integers(-3, 4)), int(rng.integers(-5, 6))), axis=(0, 1)).copy()
    pred[pred == 255] = rng.integers(0, 19)
    h, w = pred.shape
    for _ in range(4):  # blocks of a random class, including classes absent from the ground truth
        y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        pred[y : y + int(rng.integers(3, 12)), x : x + int(rng.integers(3, 20))] = rng.integers(0, 19)
    pred[rng.random(pred.shape) < 0.02] = 255  # some void predictions on labelled pixels
    return pred


def test_miou_equals_cityscapesscripts(synthetic_root: Path, tmp_path: Path) -> None:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval

    source = Cityscapes(synthetic_root, "val")
    rng = np.random.default_rng(0)
    ours_dir, cs_dir = tmp_path / "ours", tmp_path / "cs"
    ours_dir.mkdir()
    cs_dir.mkdir()
    preds, gts = [], []
    for rec in source.records:
        pred = _perturb_semantic(source.ground_truth(rec, panoptic=False).semantic, rng)
        cv2.imwrite(str(ours_dir / f"{rec.stem}.png"), pred)
        cv2.imwrite(str(cs_dir / f"{rec.stem}.png"), TRAIN_TO_LABEL[pred])
        preds.append(str(cs_dir / f"{rec.stem}.png"))
        gts.append(str(rec.semantic))

    out = tmp_path / "ours.json"
    argv = ["--predictions", str(ours_dir), "--data", str(synthetic_root), "--dataset", "cityscapes"]
    assert evaluate_main([*argv, "--json", str(out)]) == 0
    ours = json.loads(out.read_text())

    cs_eval.args.quiet = True
    cs_eval.args.JSONOutput = False
    cs_eval.args.evalInstLevelScore = False
    ref = cs_eval.evaluateImgLists(preds, gts, cs_eval.args)
    assert abs(ours["summary"]["mIoU"] - ref["averageScoreClasses"]) < 1e-4
    for row in ours["per_class"]:
        ref_iou = ref["classScores"][row["class"]]
        if np.isnan(ref_iou):
            assert row["IoU"] is None, row
        else:
            assert abs(row["IoU"] - ref_iou) < 1e-4, row
    assert 0.2 < ours["summary"]["mIoU"] < 0.95  # the perturbations really change the score


def _perturb_panoptic(
    ids: np.ndarray, segments: list[SegmentInfo], rng: np.random.Generator
) -> tuple[np.ndarray, list[SegmentInfo]]:
    """Shift the ground truth, relabel/drop some segments, add false positives; new random ids."""
    shifted = np.roll(ids, (int(rng.integers(-4, 5)), int(rng.integers(-6, 7))), axis=(0, 1))
    pred = np.zeros_like(ids)
    out: list[SegmentInfo] = []
    used: set[int] = {0}
    for s in segments:
        r = rng.random()
        if r < 0.1:
            continue  # missed segment (false negative)
        category = int(rng.integers(0, 19)) if r < 0.25 else s.category  # wrong class sometimes
        new_id = int(rng.integers(1, 2**24))
        while new_id in used:
            new_id = int(rng.integers(1, 2**24))
        used.add(new_id)
        mask = shifted == s.id
        if rng.random() < 0.3:  # eroded or dilated
            kernel = np.ones((3, 3), np.uint8)
            op = cv2.erode if rng.random() < 0.5 else cv2.dilate
            mask = op(mask.astype(np.uint8), kernel).astype(bool)
        pred[mask] = new_id
        out.append(SegmentInfo(new_id, category))
    h, w = ids.shape
    for _ in range(3):  # false positives, sometimes over void or crowd
        y, x = int(rng.integers(0, h - 10)), int(rng.integers(0, w - 10))
        new_id = int(rng.integers(1, 2**24))
        if new_id in used:
            continue
        used.add(new_id)
        pred[y : y + int(rng.integers(4, 14)), x : x + int(rng.integers(4, 20))] = new_id
        out.append(SegmentInfo(new_id, int(rng.choice([11, 13, int(rng.integers(0, 19))]))))
    present = set(np.unique(pred).tolist())
    return pred, [s for s in out if s.id in present]


def test_pq_equals_cityscapesscripts_panoptic_evaluator(synthetic_root: Path, tmp_path: Path) -> None:
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    convert2panoptic(str(synthetic_root / "gtFine"), str(gt_dir), useTrainId=False, setNames=["val"])
    source = Cityscapes(synthetic_root, "val")
    rng = np.random.default_rng(1)
    ours_dir, cs_dir = tmp_path / "ours", tmp_path / "cs"
    ours_dir.mkdir()
    cs_dir.mkdir()
    annotations = []
    crowd_seen = 0
    for rec in source.records:
        gt = source.ground_truth(rec, panoptic=True)
        assert gt.panoptic is not None and gt.segments is not None
        crowd_seen += sum(s.iscrowd for s in gt.segments)
        pred, segs = _perturb_panoptic(gt.panoptic, gt.segments, rng)
        rgb = id_to_rgb(pred)[:, :, ::-1]
        cv2.imwrite(str(ours_dir / f"{rec.stem}.png"), gt.semantic)  # semantic file required alongside
        cv2.imwrite(str(ours_dir / f"{rec.stem}_panoptic.png"), rgb)
        info = [{"id": s.id, "category_id": s.category} for s in segs]
        (ours_dir / f"{rec.stem}_panoptic.json").write_text(json.dumps({"segments_info": info}))
        image_id = rec.stem.removesuffix("_leftImg8bit")
        cv2.imwrite(str(cs_dir / f"{image_id}.png"), rgb)
        cs_info = [{"id": s.id, "category_id": CITYSCAPES.dataset_ids[s.category]} for s in segs]
        annotations.append({"image_id": image_id, "file_name": f"{image_id}.png", "segments_info": cs_info})
    (tmp_path / "cs.json").write_text(json.dumps({"annotations": annotations}))
    assert crowd_seen > 0, "the synthetic val split should contain a crowd region"

    ref = evaluatePanoptic(
        str(gt_dir / "cityscapes_panoptic_val.json"),
        str(gt_dir / "cityscapes_panoptic_val"),
        str(tmp_path / "cs.json"),
        str(cs_dir),
        str(tmp_path / "cs_result.json"),
    )
    out = tmp_path / "ours.json"
    argv = ["--predictions", str(ours_dir), "--data", str(synthetic_root), "--dataset", "cityscapes"]
    assert evaluate_main([*argv, "--task", "panoptic", "--json", str(out)]) == 0
    ours = json.loads(out.read_text())["summary"]
    for ours_key, ref_key in (("", "All"), ("_th", "Things"), ("_st", "Stuff")):
        for metric in ("PQ", "SQ", "RQ"):
            assert abs(ours[metric + ours_key] - ref[ref_key][metric.lower()]) < 1e-4, (metric, ours_key)
    per_class = json.loads(out.read_text())["per_class"]
    for row in per_class:
        label_id = CITYSCAPES.dataset_ids[CITYSCAPES.classes.index(row["class"])]
        if row["PQ"] is not None:
            assert abs(row["PQ"] - ref["per_class"][label_id]["pq"]) < 1e-4, row
    assert 0.1 < ours["PQ"] < 0.9


def test_semantic_metric_hand_computed() -> None:
    m = SemanticMetric(3)
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 255, 0, 1]], dtype=np.uint8)
    m.update(pred, gt)
    # class 0: tp 1, fn 1, fp 0 -> 1/2; class 1: tp 3, fp 1 -> 3/4; class 2: tp 1, fn 1 (void) -> 1/2
    np.testing.assert_allclose(m.iou(), [0.5, 0.75, 0.5])
    assert m.summary()["mIoU"] == pytest.approx((0.5 + 0.75 + 0.5) / 3)


def test_panoptic_metric_hand_computed() -> None:
    m = PanopticMetric(2, thing_ids=[1])
    gt = np.zeros((4, 8), np.int32)
    gt[:, :4], gt[:, 4:] = 1, 2  # stuff class 0 (id 1), thing class 1 (id 2)
    pred = np.zeros((4, 8), np.int32)
    pred[:, :3], pred[:, 3:] = 5, 6  # stuff IoU 12/16, thing IoU 16/20
    m.update(pred, [SegmentInfo(5, 0), SegmentInfo(6, 1)], gt, [SegmentInfo(1, 0), SegmentInfo(2, 1)])
    s = m.summary()
    assert s["PQ_st"] == pytest.approx(0.75) and s["PQ_th"] == pytest.approx(0.8)
    assert s["RQ"] == 1.0 and s["n"] == 2
