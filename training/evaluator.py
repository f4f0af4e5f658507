"""Evaluation of a model on a dataset split, or of saved prediction files from any backend.

Prediction files (what ``--save-predictions`` writes and ``--predictions`` reads) are defined in
pem_rt/predictions.py: one set per image, named by the image's stem (file name without extension, e.g.
``frankfurt_000000_000294_leftImg8bit``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from pem_rt.errors import PemError
from pem_rt.files import atomic_write_text
from pem_rt.predictions import prediction_paths, write_prediction
from pem_rt.segments import VOID, Segment
from training.data.loader import EvalDataset
from training.data.records import DatasetSource, SegmentInfo, read_label, read_panoptic_png
from training.dataset_meta import DatasetMeta
from training.inference import ImagePrediction, predict
from training.metrics import PanopticMetric, SemanticMetric
from training.model import PEM


@dataclass
class EvalResult:
    meta: DatasetMeta
    semantic: SemanticMetric
    panoptic: PanopticMetric | None
    images: int

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {"images": self.images, **self.semantic.summary()}
        if self.panoptic is not None:
            out.update(self.panoptic.summary())
        return out

    def to_json(self) -> dict[str, Any]:
        iou = self.semantic.iou()
        pq = self.panoptic.per_class() if self.panoptic is not None else [None] * len(iou)
        per_class = []
        for i, name in enumerate(self.meta.classes):
            row: dict[str, Any] = {"class": name, "IoU": None if math.isnan(iou[i]) else float(iou[i])}
            if self.panoptic is not None:
                row.update(pq[i] or dict.fromkeys(("PQ", "SQ", "RQ")))
                row["thing"] = i in self.meta.thing_ids
            per_class.append(row)
        return {"dataset": self.meta.name, "summary": self.summary(), "per_class": per_class}

    def table(self) -> str:
        """Per-class table of the classes that occur, then the summary lines."""
        iou = self.semantic.iou()
        pq = self.panoptic.per_class() if self.panoptic is not None else None
        width = max(12, *(len(c) for c in self.meta.classes))
        head = f"{'class':<{width}} {'IoU':>6}" + (f" {'PQ':>6} {'SQ':>6} {'RQ':>6}  kind" if pq else "")
        lines = [head, "-" * len(head)]
        for i, name in enumerate(self.meta.classes):
            if math.isnan(iou[i]) and (pq is None or pq[i] is None):
                continue
            line = f"{name:<{width}} " + ("     -" if math.isnan(iou[i]) else f"{100 * iou[i]:6.1f}")
            if pq is not None:
                r = pq[i]
                line += (
                    f" {100 * r['PQ']:6.1f} {100 * r['SQ']:6.1f} {100 * r['RQ']:6.1f}" if r else "      -" * 3
                ) + ("  thing" if i in self.meta.thing_ids else "  stuff")
            lines.append(line)
        s = self.summary()
        lines.append("-" * len(head))
        lines.append(
            f"mIoU {100 * s['mIoU']:.2f}  pixel acc {100 * s['pixel_accuracy']:.2f}  "
            f"({s['classes_evaluated']} classes, {self.images} images)"
        )
        if self.panoptic is not None:
            lines.append(
                f"PQ {100 * s['PQ']:.2f} (SQ {100 * s['SQ']:.2f} RQ {100 * s['RQ']:.2f})  "
                f"things PQ {100 * s['PQ_th']:.2f}  stuff PQ {100 * s['PQ_st']:.2f}"
            )
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(_finite(self.to_json()), indent=2, allow_nan=False))


def _finite(x: Any) -> Any:
    """NaN -> None recursively (strict JSON)."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _new_result(meta: DatasetMeta, panoptic: bool) -> EvalResult:
    k = len(meta.classes)
    return EvalResult(meta, SemanticMetric(k), PanopticMetric(k, meta.thing_ids) if panoptic else None, 0)


def _accumulate(result: EvalResult, pred: ImagePrediction, sample: dict[str, Any]) -> None:
    result.semantic.update(pred.semantic, sample["semantic"])
    if result.panoptic is not None:
        if pred.panoptic is None or pred.segments is None:
            raise PemError(f"{sample['stem']}: no panoptic prediction to evaluate PQ with")
        segments = [SegmentInfo(s.id, s.category_id) for s in pred.segments]
        result.panoptic.update(pred.panoptic, segments, sample["panoptic"], sample["segments"])
    result.images += 1


def _all_reduce(result: EvalResult, device: torch.device) -> None:
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return
    arrays = [result.semantic.confusion] + ([result.panoptic.stats] if result.panoptic is not None else [])
    for arr in arrays:
        t = torch.from_numpy(arr.astype(np.float64)).to(device)
        dist.all_reduce(t)
        arr[...] = t.cpu().numpy().astype(arr.dtype)
    n = torch.tensor([float(result.images)], device=device)
    dist.all_reduce(n)
    result.images = int(n.item())


def save_prediction(out_dir: Path, stem: str, pred: ImagePrediction) -> None:
    """Write one image's prediction files (pem_rt/predictions.py)."""
    write_prediction(out_dir, stem, pred.semantic, pred.panoptic, pred.segments, "--save-predictions")


def load_prediction(pred_dir: Path, stem: str, panoptic: bool, num_classes: int) -> ImagePrediction:
    """Read one image's prediction files; missing or malformed files are one-line PemErrors."""
    path, pan_path, json_path = prediction_paths(pred_dir, stem)
    if not path.is_file():
        raise PemError(f"prediction {path} is missing: expect one <image stem>.png label map per image")
    semantic = read_label(path)
    bad = (semantic >= num_classes) & (semantic != VOID)
    if bad.any():
        raise PemError(
            f"{path} holds class id {int(semantic[bad].max())} but the dataset has {num_classes} classes "
            "(expect contiguous ids 0..K-1, 255 = void)"
        )
    if not panoptic:
        return ImagePrediction(semantic.astype(np.uint8))
    for p in (pan_path, json_path):
        if not p.is_file():
            raise PemError(
                f"panoptic prediction {p} is missing (needed for PQ; or evaluate with --task semantic)"
            )
    try:
        info = json.loads(json_path.read_text())["segments_info"]
        segments = [Segment(int(s["id"]), int(s["category_id"]), bool(s.get("isthing", False))) for s in info]
    except (ValueError, KeyError, TypeError) as e:
        raise PemError(f"{json_path} is not a segments_info json ({e})") from None
    if any(not 0 <= s.category_id < num_classes for s in segments):
        raise PemError(f"{json_path} has a category_id outside 0..{num_classes - 1}")
    return ImagePrediction(semantic.astype(np.uint8), read_panoptic_png(pan_path), segments)


def evaluate_model(
    model: PEM,
    source: DatasetSource,
    panoptic: bool,
    short_side: int | None = None,
    limit: int | None = None,
    save_dir: Path | None = None,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> EvalResult:
    """Run ``model`` on the split and accumulate mIoU (and PQ). ``shard`` = (rank, world): this process
    takes every world-th image from its rank on; the result is summed over ranks."""
    rank, world = shard
    dataset = EvalDataset(source, panoptic, limit)
    result = _new_result(source.meta, panoptic)
    was_training = model.training
    model.eval()
    indices = range(rank, len(dataset), world)
    for i in tqdm(indices, desc="eval", disable=not progress or rank != 0, leave=False, dynamic_ncols=True):
        sample = dataset[i]
        pred = predict(model, sample["image"].numpy(), panoptic, short_side)
        if save_dir is not None:
            save_prediction(save_dir, sample["stem"], pred)
        _accumulate(result, pred, sample)
    model.train(was_training)
    _all_reduce(result, model.pixel_mean.device)
    return result


def evaluate_files(
    pred_dir: Path, source: DatasetSource, panoptic: bool, limit: int | None = None, progress: bool = True
) -> EvalResult:
    """Evaluate saved prediction files (see the module docstring) against the split's ground truth."""
    if not pred_dir.is_dir():
        raise PemError(f"--predictions {pred_dir} is not a folder")
    dataset = EvalDataset(source, panoptic, limit, with_image=False)
    result = _new_result(source.meta, panoptic)
    for i in tqdm(range(len(dataset)), desc="eval", disable=not progress, leave=False, dynamic_ncols=True):
        record = dataset.records[i]
        pred = load_prediction(pred_dir, record.stem, panoptic, len(source.meta.classes))
        sample = dataset[i]
        if pred.semantic.shape != sample["semantic"].shape:
            raise PemError(
                f"{pred_dir / record.stem}.png is {pred.semantic.shape[1]}x{pred.semantic.shape[0]} but the "
                f"image is {sample['semantic'].shape[1]}x{sample['semantic'].shape[0]}; save predictions "
                "at the image's own size"
            )
        _accumulate(result, pred, sample)
    return result
