"""Activation ranges for INT8 calibration, measured with ONNX Runtime on real frames.

Methods (symmetric, per tensor, like TensorRT): ``max`` (largest |x| seen), ``percentile`` (the given
percentile of |x|), ``entropy`` (TensorRT's KL-divergence threshold over a 2048-bin histogram of |x|,
128 quantised bins). Returns amax per tensor; the INT8 scale is amax / 127.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from tqdm import tqdm

from pem_rt.ort_session import cpu_session

METHODS = ("entropy", "max", "percentile")
NUM_BINS = 2048
QUANTIZED_BINS = 128
# ops whose float inputs ModelOpt/TensorRT may quantize (a superset is fine: extra ranges go unused)
QUANTIZABLE_OPS = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "MatMul",
        "Gemm",
        "Add",
        "Mul",
        "Concat",
        "AveragePool",
        "MaxPool",
        "GlobalAveragePool",
        "Resize",
        "BatchNormalization",
        "LayerNormalization",
        "ReduceMean",
        "Einsum",
        "Sub",
    }
)


def activation_tensors(model: onnx.ModelProto, exclude_nodes: Iterable[str] = ()) -> list[str]:
    """Float, non-constant inputs of quantizable nodes (excluding ``exclude_nodes``), in graph order."""
    model = onnx.shape_inference.infer_shapes(model)
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*model.graph.value_info, *model.graph.input]}
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    skip = set(exclude_nodes)
    seen: dict[str, None] = {}
    for node in model.graph.node:
        if node.op_type in QUANTIZABLE_OPS and node.name not in skip:
            for name in node.input:
                if name and name not in constants and types.get(name) in floats:
                    seen[name] = None
    return list(seen)


def _augmented_session(model_path: Path, tensors: list[str]) -> Any:
    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    infos = {vi.name: vi for vi in model.graph.value_info}
    existing = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in existing:
            model.graph.output.append(infos[name] if name in infos else onnx.ValueInfoProto(name=name))
    return cpu_session(model.SerializeToString(), optimize=False)  # keep every tensor as named


def _batches(frames: np.ndarray, batch: int) -> list[np.ndarray]:
    return [frames[i : i + batch] for i in range(0, len(frames) - batch + 1, batch)]


def collect_ranges(
    model_path: Path,
    tensors: list[str],
    frames: np.ndarray,
    method: str,
    percentile: float = 99.99,
    batch: int = 1,
) -> dict[str, float]:
    """amax per tensor over ``frames`` (uint8 BGR [N, H, W, 3]) with ``method``."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method}")
    session = _augmented_session(model_path, tensors)
    outputs = [o.name for o in session.get_outputs()]
    index = {name: outputs.index(name) for name in tensors}
    batches = _batches(frames, batch)

    def run(desc: str) -> Iterable[list[np.ndarray]]:
        for images in tqdm(batches, desc=desc, unit="batch", leave=False):
            yield session.run(None, {"image": images})

    amax = dict.fromkeys(tensors, 0.0)
    for result in run("calibration: ranges"):
        for name, i in index.items():
            amax[name] = max(amax[name], float(np.abs(result[i].astype(np.float32)).max(initial=0.0)))
    if method == "max":
        return amax
    hists = {name: np.zeros(NUM_BINS, dtype=np.int64) for name in tensors}
    for result in run(f"calibration: {method} histograms"):
        for name, i in index.items():
            if amax[name] > 0:
                values = np.abs(result[i].astype(np.float32)).ravel()
                hists[name] += np.histogram(values, bins=NUM_BINS, range=(0.0, amax[name]))[0]
    out = {}
    for name in tensors:
        if amax[name] == 0.0:
            out[name] = 0.0
        elif method == "percentile":
            out[name] = percentile_threshold(hists[name], amax[name], percentile)
        else:
            out[name] = entropy_threshold(hists[name], amax[name])
    return out


def percentile_threshold(hist: np.ndarray, amax: float, percentile: float) -> float:
    cdf = np.cumsum(hist) / max(int(hist.sum()), 1)
    i = int(np.searchsorted(cdf, percentile / 100.0))
    return float(min(i + 1, len(hist)) * amax / len(hist))


def _smooth(p: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Give empty bins a little mass (taken from the others) so KL divergence stays finite."""
    zero = p == 0
    n_zero, n_nonzero = int(zero.sum()), int((~zero).sum())
    if n_nonzero == 0:
        return p
    out = p.astype(np.float64).copy()
    out[zero] = eps
    out[~zero] -= eps * n_zero / n_nonzero
    return out


def _kl_at(hist: np.ndarray, i: int, quantized_bins: int) -> float:
    """KL divergence between the histogram clipped at bin ``i`` (outliers folded into the last bin) and
    its ``quantized_bins``-level quantisation (each group's mass spread over its non-empty bins)."""
    p = hist[:i].copy()
    p[-1] += hist[i:].sum()
    if p.sum() == 0:
        return np.inf
    edges = np.linspace(0, i, quantized_bins + 1).astype(np.int64)
    src = hist[:i]
    group_sum = np.add.reduceat(src, edges[:-1])
    group_nonzero = np.add.reduceat((src != 0).astype(np.float64), edges[:-1])
    group_of_bin = np.repeat(np.arange(quantized_bins), np.diff(edges))
    per_bin = np.divide(group_sum, group_nonzero, out=np.zeros_like(group_sum), where=group_nonzero > 0)
    q = np.where(src != 0, per_bin[group_of_bin], 0.0)
    if q.sum() == 0:
        return np.inf
    ps, qs = _smooth(p / p.sum()), _smooth(q / q.sum())
    mask = ps > 0
    return float(np.sum(ps[mask] * np.log(ps[mask] / np.maximum(qs[mask], 1e-12))))


def entropy_threshold(
    hist: np.ndarray, amax: float, quantized_bins: int = QUANTIZED_BINS, stride: int = 8
) -> float:
    """TensorRT's entropy calibration: the clipping threshold whose 128-level quantisation of the
    histogram diverges least (KL) from the clipped histogram. Searched coarse-to-fine: every ``stride``
    bins, then every bin around the best coarse candidate (KL varies smoothly with the threshold)."""
    n = len(hist)
    hist = hist.astype(np.float64)
    coarse = [*range(quantized_bins, n + 1, stride), n]
    best = min(coarse, key=lambda i: _kl_at(hist, i, quantized_bins))
    fine = range(max(quantized_bins, best - stride + 1), min(n, best + stride - 1) + 1)
    best = min(fine, key=lambda i: _kl_at(hist, i, quantized_bins))
    return float(best * amax / n)
