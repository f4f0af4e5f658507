"""How far a Q/DQ graph is from FP32, measured with ONNX Runtime on held-out frames: the yardstick of
INT8 sensitivity (export/int8_sensitivity.py) and of the accuracy budget (export/int8_budget.py).

Held-out frames come from a dataset split (``--eval-data``, ground truth: mIoU against it) or from an
image folder / video / "skimage" (``--eval-frames``: the FP32 graph's labels are the truth). They must
not be calibration frames: a frame found in both is refused in one line.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from calibration.cache import frames_digest
from calibration.frames import read_frames
from export.eval_frames import EvalSource, load_eval_frames
from pem_rt.errors import PemError
from pem_rt.model_meta import ModelMeta
from pem_rt.ort_session import cpu_session
from training.metrics import SemanticMetric


@dataclass(frozen=True)
class HeldOut:
    """Args:
    data: dataset root (``--eval-data``): frames and ground truth of ``split``, layout ``dataset``.
    frames: without ``data``: an image folder, video or "skimage" (``--eval-frames``).
    max_frames: how many frames.
    """

    data: Path | None = None
    dataset: str = "cityscapes"
    split: str = "val"
    frames: str | None = None
    max_frames: int = 16


@dataclass(frozen=True)
class Measured:
    """agreement: pixels with FP32's label; miou: against the truth (fraction); drop: FP32's mIoU minus
    this one, in points."""

    agreement: float
    miou: float
    drop: float

    def to_json(self) -> dict[str, float]:
        return {"agreement": self.agreement, "mIoU": self.miou, "miou_drop": self.drop}


def add_eval_args(parser: argparse.ArgumentParser) -> None:
    """The held-out frame flags of --sensitivity and --max-miou-drop; read by :func:`held_out_from_args`."""
    g = parser.add_argument_group("INT8 accuracy budget, measured with ONNX Runtime on held-out frames")
    g.add_argument(
        "--max-miou-drop",
        type=float,
        default=None,
        metavar="D",
        help="keep the fewest, most INT8-sensitive model parts in the high precision until the INT8 "
        "graph's measured mIoU drop vs FP32 is at most D points (fails in one line when no mix does)",
    )
    g.add_argument(
        "--eval-data", type=Path, default=None, help="dataset root: frames + ground truth (mIoU against it)"
    )
    g.add_argument("--eval-dataset", default="cityscapes", help="layout of --eval-data (default cityscapes)")
    g.add_argument("--eval-split", default="val", help="split of --eval-data (default val)")
    g.add_argument(
        "--eval-frames",
        default=None,
        help="without --eval-data: image folder, video or 'skimage' (FP32's labels are the truth); "
        "never the calibration frames",
    )
    g.add_argument("--eval-max-frames", type=int, default=16, help="held-out frames used (default 16)")


def held_out_from_args(args: argparse.Namespace) -> HeldOut:
    """The held-out frames of the flags :func:`add_eval_args` added (PemError when none are named)."""
    if args.eval_data is None and args.eval_frames is None:
        raise PemError(
            "--sensitivity and --max-miou-drop measure on held-out frames: pass --eval-data DATASET "
            "(with ground truth) or --eval-frames FOLDER|VIDEO|skimage (not the --calib-data frames)"
        )
    if args.eval_max_frames < 1:
        raise PemError(f"--eval-max-frames {args.eval_max_frames}: need at least 1 frame")
    return HeldOut(args.eval_data, args.eval_dataset, args.eval_split, args.eval_frames, args.eval_max_frames)


def _session(model: onnx.ModelProto | Path) -> Any:
    return cpu_session(model.SerializeToString() if isinstance(model, onnx.ModelProto) else model)


def predict(model: onnx.ModelProto | Path, images: np.ndarray) -> np.ndarray:
    """Label maps [N, H, W] of a semantic graph on uint8 BGR frames [N, H, W, 3], one frame at a time."""
    session = _session(model)
    names = [o.name for o in session.get_outputs()]
    if "labels" not in names:
        raise PemError(
            "INT8 accuracy is measured on semantic graphs (a 'labels' output); export --task semantic"
        )
    index = names.index("labels")
    return np.stack([session.run(None, {"image": f[None]})[index][0] for f in images])


class Yardstick:
    """FP32's labels and mIoU on the held-out frames, and :meth:`measure` for any graph of the model."""

    def __init__(self, reference: Path, held_out: HeldOut, calibration_frames: np.ndarray) -> None:
        meta = ModelMeta.from_onnx(reference)
        if meta.task != "semantic":
            raise PemError(
                f"--onnx {reference} is a {meta.task} graph; INT8 accuracy is measured on a semantic export"
            )
        size = (meta.input_height, meta.input_width)
        source = EvalSource(held_out.data, held_out.dataset, held_out.split, held_out.frames or "skimage")
        frames = load_eval_frames(source, size, held_out.max_frames)
        _refuse_calibration_frames(frames.images, calibration_frames, held_out)
        self.images = frames.images
        self.num_classes = len(meta.classes)
        self.fp32 = predict(reference, self.images)
        self.truth = frames.labels if frames.labels is not None else self.fp32
        self.truth_name = "ground truth" if frames.labels is not None else "FP32 labels"
        self.fp32_miou = self._miou(self.fp32)

    def _miou(self, labels: np.ndarray) -> float:
        metric = SemanticMetric(self.num_classes)
        metric.update(labels, self.truth)
        return float(metric.summary()["mIoU"])

    def measure(self, model: onnx.ModelProto | Path) -> Measured:
        labels = predict(model, self.images)
        miou = self._miou(labels)
        return Measured(float((labels == self.fp32).mean()), miou, (self.fp32_miou - miou) * 100)


def _refuse_calibration_frames(images: np.ndarray, calibration: np.ndarray, held_out: HeldOut) -> None:
    seen = {frames_digest(f) for f in calibration}
    shared = sum(frames_digest(f) in seen for f in images)
    if shared:
        source = (
            f"--eval-data {held_out.data}"
            if held_out.data is not None
            else f"--eval-frames {held_out.frames}"
        )
        raise PemError(
            f"{source} shares {shared} of {len(images)} frames with --calib-data; measure on held-out "
            "frames (another folder or split)"
        )


def calibration_frames(data: str | Path, reference: Path, batches: int) -> np.ndarray:
    """The frames calibration reads (to keep them out of the held-out set)."""
    meta = ModelMeta.from_onnx(reference)
    return read_frames(data, (meta.input_height, meta.input_width), batches)
