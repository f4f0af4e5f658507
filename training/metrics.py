"""Segmentation metrics: mIoU from a confusion matrix and PQ/SQ/RQ (panopticapi's algorithm).

Both accumulate per image into arrays that can be summed across processes (all-reduce) and are
compared in tests with cityscapesscripts' evaluators (pixel-level and panoptic) to within 1e-4.

mIoU: IoU_c = TP / (TP + FP + FN) over pixels whose ground truth is not void; a void prediction (255 or
any value >= K) on a labelled pixel is a false negative; the mean runs over classes with TP+FP+FN > 0.
PQ: a predicted and a ground-truth segment of one class match when IoU > 0.5, the IoU's union leaving
out the prediction's void pixels; predictions lying more than half on void or same-class crowd regions
are not false positives; PQ = sum IoU / (TP + FP/2 + FN/2), averaged over classes that occur.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.data.records import SegmentInfo

OFFSET = 256 * 256 * 256  # panopticapi: gt_id * OFFSET + pred_id


class SemanticMetric:
    """Confusion matrix [K, K+1] of ground truth (rows) vs prediction (columns; column K = void)."""

    def __init__(self, num_classes: int, ignore_label: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.confusion = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
        k = self.num_classes
        valid = (gt != self.ignore_label) & (gt < k)
        g = gt[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        p = np.where((p >= 0) & (p < k), p, k)
        self.confusion += np.bincount(g * (k + 1) + p, minlength=k * (k + 1)).reshape(k, k + 1)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for a class with no ground truth and no prediction."""
        c = self.confusion.astype(np.float64)
        tp = np.diag(c[:, : self.num_classes])
        union = c.sum(1) + c[:, : self.num_classes].sum(0) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def summary(self) -> dict[str, float]:
        iou = self.iou()
        c = self.confusion
        labelled = c.sum()
        return {
            "mIoU": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            "pixel_accuracy": float(np.trace(c[:, : self.num_classes]) / labelled)
            if labelled
            else float("nan"),
            "classes_evaluated": int(np.isfinite(iou).sum()),
        }


@dataclass
class PQStat:
    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0


class PanopticMetric:
    """Per-class PQ statistics, stored as an array [K, 4] = (sum IoU, TP, FP, FN)."""

    def __init__(self, num_classes: int, thing_ids: Sequence[int]) -> None:
        self.num_classes = num_classes
        self.thing_ids = frozenset(thing_ids)
        self.stats = np.zeros((num_classes, 4), dtype=np.float64)

    def update(
        self,
        pred: np.ndarray,
        pred_segments: Sequence[SegmentInfo],
        gt: np.ndarray,
        gt_segments: Sequence[SegmentInfo],
    ) -> None:
        """One image: segment maps (0 = void) and their segments (prediction crowd flags are ignored)."""
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
        gt_info = {s.id: s for s in gt_segments}
        pred_info = {s.id: s for s in pred_segments}
        pred_area = _segment_areas(pred, pred_info)
        gt_area = {int(k): int(v) for k, v in zip(*np.unique(gt, return_counts=True), strict=True)}
        joint = gt.astype(np.int64) * OFFSET + pred.astype(np.int64)
        overlap: dict[tuple[int, int], int] = {}
        for label, count in zip(*np.unique(joint, return_counts=True), strict=True):
            overlap[(int(label) // OFFSET, int(label) % OFFSET)] = int(count)
        gt_matched, pred_matched = self._match(gt_info, pred_info, gt_area, pred_area, overlap)
        crowd_of_class = self._count_false_negatives(gt_info, gt_matched)
        self._count_false_positives(pred_info, pred_area, pred_matched, overlap, crowd_of_class)

    def _match(
        self,
        gt_info: dict[int, SegmentInfo],
        pred_info: dict[int, SegmentInfo],
        gt_area: dict[int, int],
        pred_area: dict[int, int],
        overlap: dict[tuple[int, int], int],
    ) -> tuple[set[int], set[int]]:
        """True positives: same class, not crowd, IoU > 0.5 (void pixels of the prediction not counted)."""
        gt_matched, pred_matched = set(), set()
        for (g, p), inter in overlap.items():
            if g not in gt_info or p not in pred_area:
                continue
            gs, ps = gt_info[g], pred_info[p]
            if gs.iscrowd or gs.category != ps.category:
                continue
            union = pred_area[p] + gt_area.get(g, 0) - inter - overlap.get((0, p), 0)
            iou = inter / union
            if iou > 0.5:
                self.stats[gs.category, 0] += iou
                self.stats[gs.category, 1] += 1
                gt_matched.add(g)
                pred_matched.add(p)
        return gt_matched, pred_matched

    def _count_false_negatives(self, gt_info: dict[int, SegmentInfo], gt_matched: set[int]) -> dict[int, int]:
        """Unmatched non-crowd ground truth; returns the crowd segment of each class that has one."""
        crowd_of_class: dict[int, int] = {}
        for g, gs in gt_info.items():
            if g in gt_matched:
                continue
            if gs.iscrowd:
                crowd_of_class[gs.category] = g
                continue
            self.stats[gs.category, 3] += 1
        return crowd_of_class

    def _count_false_positives(
        self,
        pred_info: dict[int, SegmentInfo],
        pred_area: dict[int, int],
        pred_matched: set[int],
        overlap: dict[tuple[int, int], int],
        crowd_of_class: dict[int, int],
    ) -> None:
        """Unmatched predictions, except those mostly on void or on a crowd region of their class."""
        for p, area in pred_area.items():
            if p in pred_matched:
                continue
            ps = pred_info[p]
            ignored = overlap.get((0, p), 0)
            if ps.category in crowd_of_class:
                ignored += overlap.get((crowd_of_class[ps.category], p), 0)
            if ignored / area > 0.5:
                continue
            self.stats[ps.category, 2] += 1

    def per_class(self) -> list[dict[str, float] | None]:
        """PQ, SQ, RQ per class; None for a class with no TP, FP or FN."""
        out: list[dict[str, float] | None] = []
        for iou, tp, fp, fn in self.stats:
            if tp + fp + fn == 0:
                out.append(None)
                continue
            denom = tp + 0.5 * fp + 0.5 * fn
            out.append({"PQ": iou / denom, "SQ": iou / tp if tp else 0.0, "RQ": tp / denom})
        return out

    def summary(self) -> dict[str, float]:
        rows = self.per_class()
        result: dict[str, float] = {}
        for name, select in (("", None), ("_th", True), ("_st", False)):
            chosen = [
                r
                for i, r in enumerate(rows)
                if r is not None and (select is None or (i in self.thing_ids) == select)
            ]
            for key in ("PQ", "SQ", "RQ"):
                result[key + name] = float(np.mean([r[key] for r in chosen])) if chosen else float("nan")
            result["n" + name] = len(chosen)
        return result


def _segment_areas(pred: np.ndarray, pred_info: dict[int, SegmentInfo]) -> dict[int, int]:
    """Pixels of each predicted segment (0 = void left out); every id in the map must have its info."""
    areas: dict[int, int] = {}
    for label, count in zip(*np.unique(pred, return_counts=True), strict=True):
        lab = int(label)
        if lab == 0:
            continue
        if lab not in pred_info:
            raise ValueError(f"predicted segment id {lab} is in the map but has no segment info")
        areas[lab] = int(count)
    return areas
