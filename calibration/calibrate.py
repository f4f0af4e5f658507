"""INT8 calibration of a reference graph: frames -> activation ranges -> cache -> Q/DQ ONNX.

    from calibration.calibrate import CalibrationConfig, calibrate
    result = calibrate(Path("m.onnx"), Path("m.int8.onnx"), CalibrationConfig(data="frames/"), keep_out)

Reads frames (same preprocessing as the runtime, the rest inside the graph), measures activation
ranges (entropy / max / percentile) with ONNX Runtime, stores them in a reusable calibration cache
(keyed by model hash, input size, method and frames: a second run with the same settings skips
calibration) and writes the Q/DQ graph with NVIDIA ModelOpt (calibration/quantize.py). ``keep_out``
names nodes that must stay out of INT8 (what a later stage replaces, e.g. the similarity MatMuls graph
surgery turns into the PrototypeSelection plugin): the caller, who knows those stages, passes them.
The `pem calibrate` command is export/calibrate.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from calibration.cache import CalibrationKey, frames_digest, read_cache, write_cache
from calibration.frames import read_frames
from calibration.quantize import QuantizeReport, quantize_int8
from calibration.ranges import METHODS, activation_tensors, collect_ranges
from pem_rt.engine_meta import sha256_file
from pem_rt.errors import PemError
from pem_rt.lineage import INT8, SCRATCH, pick_reference, require_reference
from pem_rt.model_meta import ModelMeta


@dataclass(frozen=True)
class CalibrationConfig:
    """Args:
    data: frames to calibrate on: an image folder, a video file, or "skimage" (bundled photographs).
    method: range method, one of calibration.ranges.METHODS.
    batches: how many frames (evenly spread over ``data``).
    percentile: the percentile of the "percentile" method.
    cache: calibration cache file; None = the caller's default beside the model.
    exclude: regular expressions over node names kept out of INT8 (``--int8-exclude``).
    high_precision: "fp16" or "fp32", the precision of what stays out of INT8.
    """

    data: str | Path = "skimage"
    method: str = "percentile"
    batches: int = 32
    percentile: float = 99.99
    cache: Path | None = None
    exclude: tuple[str, ...] = ()
    high_precision: str = "fp16"


@dataclass(frozen=True)
class CalibrationResult:
    qdq_onnx: Path
    cache: Path
    reused_cache: bool
    report: QuantizeReport
    seconds: float


def calibrate(
    reference: Path, out: Path, config: CalibrationConfig, keep_out: Sequence[str] = (), role: str = INT8
) -> CalibrationResult:
    """Calibrate ``reference`` (a graph from `pem export`) and write its INT8 Q/DQ graph to ``out``.

    ``keep_out``: names of nodes kept out of INT8 besides ``config.exclude``. The cache defaults to
    ``<reference stem>.calib``. ``role``: the lineage role of the result (INT8, or SCRATCH for `pem
    compare`'s graphs, which may also calibrate its scratch export). A cache that does not hold a scale
    for every activation tensor (a damaged or older cache) is recomputed.
    """
    if config.method not in METHODS:
        raise PemError(f"unknown --calib-method {config.method}; choose one of {', '.join(METHODS)}")
    start = time.perf_counter()
    meta = ModelMeta.from_onnx(reference)
    require_reference(reference, also=(role,) if role == SCRATCH else ())
    if meta.batch not in (0, 1):
        raise PemError(
            f"{reference} has a static batch of {meta.batch}; calibrate a batch-1 or dynamic export"
        )
    size = (meta.input_height, meta.input_width)
    frames = read_frames(config.data, size, config.batches)
    cache = config.cache or reference.with_suffix(".calib")
    key = CalibrationKey(
        model_sha256=sha256_file(reference),
        input_size=size,
        method=config.method,
        percentile=config.percentile if config.method == "percentile" else None,
        num_frames=len(frames),
        frames_sha256=frames_digest(frames),
    )
    tensors = activation_tensors(onnx.load(str(reference)), exclude_nodes=keep_out)
    scales = read_cache(cache, key)
    if scales is not None and set(scales) != set(tensors):
        missing = len(set(tensors) - set(scales))
        print(f"calibration cache {cache} lacks {missing} of {len(tensors)} tensors: calibrating again")
        scales = None
    reused = scales is not None
    if reused:
        print(
            f"calibration cache {cache} matches (model, size, {config.method}, {len(frames)} frames): "
            "skipping calibration"
        )
    else:
        print(f"calibrating {len(tensors)} activation tensors on {len(frames)} frames ({config.method})")
        amax = collect_ranges(reference, tensors, frames, config.method, config.percentile)
        write_cache(cache, key, amax)
        print(f"wrote calibration cache {cache}")
    excluded = (*keep_out, *config.exclude)
    report = quantize_int8(reference, out, cache, frames[:1], excluded, config.high_precision, role)
    return CalibrationResult(out, cache, reused, report, time.perf_counter() - start)


def default_reference() -> Path:
    """The reference graph under runs/ (by lineage: never an FP16, INT8, TensorRT or comparison graph)."""
    return pick_reference("--onnx")
