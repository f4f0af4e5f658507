"""Quantisation-aware training (`pem train --qat --weights best.pt`): NVIDIA ModelOpt's PyTorch fake
quantisation, INT8 as TensorRT runs it (weights per output channel, activations per tensor, symmetric),
initialised from calibration frames and then fine-tuned with the usual losses.

Every Conv and Linear gets an input and a weight quantizer; what stays out of INT8 in the deployed
engine stays float here too (the deformable convs and the prototype selection, which run as FP16/FP32
plugins). Activation ranges start from ``max``, ``entropy`` or ``percentile`` over the calibration frames
(the same frames, picked the same way, as `pem calibrate --calib-data`); training then moves the weights
to where their INT8 rounding costs least. The checkpoint records ``qat`` (the method): the quantizers'
ranges travel in its state dict, and :func:`restore_quantizers` puts the quantizers back before loading
it (what `pem export` does to write the Q/DQ graph).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pem_rt.errors import PemError
from pem_rt.images import is_image
from pem_rt.letterbox import Letterbox
from training.model import PEM
from training.qat_ranges import entropy_amax

QAT_METHODS = ("max", "entropy", "percentile")


@dataclass(frozen=True)
class QatConfig:
    """Args:
    method: activation range initialisation, one of QAT_METHODS.
    calib_data: image folder of the calibration frames (None: the training split's images).
    calib_batches: how many frames (evenly spread, as `pem calibrate` picks them).
    percentile: for the "percentile" method.
    """

    method: str = "max"
    calib_data: Path | None = None
    calib_batches: int = 32
    percentile: float = 99.99

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "percentile": self.percentile}


@contextlib.contextmanager
def _modelopt_quietly() -> Iterator[None]:
    """For the block, none of what ModelOpt's first import says on a machine without CUDA or the
    transformers package (a CUDA_HOME notice, torch.jit.script's deprecation, "Cannot find transformers
    package"): none of it concerns PEM's QAT, and a user could not act on it."""
    notices = logging.getLogger("torch.utils.cpp_extension")
    level = notices.level
    notices.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated")
            warnings.filterwarnings("ignore", message=r"Cannot find transformers package")
            yield
    finally:
        notices.setLevel(level)


def _mtq() -> Any:
    """modelopt.torch.quantization, imported quietly."""
    with _modelopt_quietly():
        import modelopt.torch.quantization as mtq
        import modelopt.torch.quantization.model_calib  # noqa: F401  (imports the rest of ModelOpt)
    return mtq


def quant_config(method: str) -> dict[str, Any]:
    """ModelOpt's INT8 configuration; activations collect histograms for entropy/percentile."""
    mtq = _mtq()
    cfg = copy.deepcopy(mtq.INT8_DEFAULT_CFG)
    if method != "max":  # the activations' entry, in place: what the defaults disable stays disabled
        for entry in cfg["quant_cfg"]:
            if entry.get("quantizer_name") == "*input_quantizer" and "cfg" in entry:
                entry["cfg"] = {**entry["cfg"], "calibrator": "histogram"}
    return cfg


def evenly(paths: Sequence[Path], limit: int) -> list[Path]:
    """``limit`` of ``paths`` spread evenly (calibration/frames.py picks frames the same way)."""
    if not paths:
        return []
    return [
        paths[i] for i in sorted({int(i) for i in np.linspace(0, len(paths) - 1, min(len(paths), limit))})
    ]


def calibration_images(files: Sequence[Path], size: tuple[int, int]) -> list[np.ndarray]:
    """RGB uint8 [H, W, 3] frames fitted to ``size`` the way the stream runtime fits them."""
    frames = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise PemError(f"--calib-data: cannot read image {path}; remove it or re-save it as PNG/JPEG")
        frames.append(np.ascontiguousarray(Letterbox(size).apply(bgr)[0][:, :, ::-1]))
    return frames


def folder_images(folder: Path, limit: int) -> list[Path]:
    if not folder.is_dir():
        raise PemError(
            f"--calib-data {folder} is not a folder of images; pass the calibration frames' folder"
        )
    files = evenly(sorted(p for p in folder.rglob("*") if p.is_file() and is_image(p)), limit)
    if not files:
        raise PemError(f"--calib-data {folder} has no images; pass the folder `pem calibrate` used")
    return files


def _forward_loop(frames: Sequence[np.ndarray]) -> Callable[[nn.Module], None]:
    def loop(model: nn.Module) -> None:
        pem: Any = model
        with torch.no_grad():
            for frame in frames:
                x = torch.from_numpy(frame).permute(2, 0, 1)[None].to(pem.pixel_mean.device)
                pem(pem.normalize(x), all_predictions=False)

    return loop


def quantize_for_training(
    model: PEM, config: QatConfig, frames: Sequence[np.ndarray], progress: bool = False
) -> str:
    """Insert fake quantizers into ``model`` (in place) and initialise their ranges on ``frames``
    (``progress``: a bar over the quantizers' histogram range searches); returns one line saying what
    was done."""
    mtq = _mtq()
    from modelopt.torch.quantization.model_calib import enable_stats_collection

    if config.method not in QAT_METHODS:
        raise PemError(f"unknown --calib-method {config.method}; choose one of {', '.join(QAT_METHODS)}")
    was_training = model.training
    model.eval()  # calibration must not move the BatchNorm statistics
    loop = _forward_loop(frames)
    with _modelopt_quietly(), contextlib.redirect_stdout(io.StringIO()):  # ModelOpt prints what it inserted
        if config.method == "max":
            mtq.quantize(model, quant_config("max"), forward_loop=loop)
        else:
            mtq.quantize(model, {**quant_config(config.method), "algorithm": None})  # ranges: below
            enable_stats_collection(model)
            loop(model)
            _load_histogram_ranges(model, config.method, config.percentile, progress)
    _switch_off_unreached(model)
    model.train(was_training)
    count = sum(1 for q in _quantizers(model) if q.is_enabled)
    return (
        f"QAT: {count} INT8 fake quantizers, ranges from {config.method} on {len(frames)} calibration frames"
    )


def _switch_off_unreached(model: nn.Module) -> None:
    """nn.MultiheadAttention uses its ``out_proj`` weight without calling ``out_proj``, so that module's
    quantizers never see a tensor: off, without a range, in the QAT model and in its restored copy alike
    (else the checkpoint's state dict and the restored model disagree on their keys)."""
    for attention in model.modules():
        if isinstance(attention, nn.MultiheadAttention):
            for q in _quantizers(attention.out_proj):
                q.disable()
                if getattr(q, "_amax", None) is not None:
                    q.reset_amax()


def _quantizers(model: nn.Module) -> list[Any]:
    from modelopt.torch.quantization.nn import TensorQuantizer

    return [m for m in model.modules() if isinstance(m, TensorQuantizer)]


def _load_histogram_ranges(model: nn.Module, method: str, percentile: float, progress: bool) -> None:
    """ModelOpt's finish_stats_collection for histogram calibrators with a method of our choosing
    (weights keep their max calibrator); the entropy search is ours (training/qat_ranges.py: the same
    range, in seconds instead of half an hour)."""
    kwargs = {"percentile": percentile} if method == "percentile" else {}
    bar = tqdm(_quantizers(model), desc=f"QAT {method} ranges", disable=not progress, leave=False)
    for q in bar:
        if not q.is_enabled:
            continue
        cal = getattr(q, "_calibrator", None)
        if cal is not None:
            if type(cal).__name__ != "HistogramCalibrator":
                amax = cal.compute_amax()
            elif method == "entropy":
                amax = _entropy_range(cal)
            else:
                amax = cal.compute_amax(method, **kwargs)
            if amax is not None:
                q.amax = amax  # what load_calib_amax sets, without computing the range a second time
        q.enable_quant()
        q.disable_calib()


def _entropy_range(cal: Any) -> torch.Tensor | None:
    """The entropy amax of a ModelOpt histogram calibrator's collected |x| histogram (None before any
    tensor), as the float32 scalar ModelOpt's own search returns."""
    hist, edges = cal._calib_hist, cal._calib_bin_edges
    if hist is None or edges is None:
        return None
    if isinstance(hist, torch.Tensor):
        hist, edges = hist.int().cpu().numpy(), edges.cpu().numpy()
    amax = entropy_amax(hist, edges, cal._num_bits, cal._unsigned)
    return torch.tensor(amax, dtype=torch.float32)


def restore_quantizers(model: PEM, size: tuple[int, int] = (64, 64)) -> None:
    """Put the fake quantizers of a QAT checkpoint back into a freshly built ``model`` (before its
    ``load_state_dict``, which then restores the trained ranges)."""
    mtq = _mtq()
    frame = np.zeros((*size, 3), dtype=np.uint8)
    was_training = model.training
    model.eval()
    with _modelopt_quietly(), contextlib.redirect_stdout(io.StringIO()):
        mtq.quantize(model, quant_config("max"), forward_loop=_forward_loop([frame]))
    _switch_off_unreached(model)
    model.train(was_training)
