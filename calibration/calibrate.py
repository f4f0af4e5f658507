"""`python calibration/calibrate.py --onnx model.onnx --calib-data DIR|VIDEO|skimage`: INT8 Q/DQ ONNX.

Reads frames (same preprocessing as the runtime, the rest inside the graph), measures activation
ranges (entropy / max / percentile) with ONNX Runtime, stores them in a reusable calibration cache
(keyed by model hash, input size, method and frames: a second run with the same settings skips
calibration) and writes the Q/DQ graph with NVIDIA ModelOpt (calibration/quantize.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from calibration.cache import CalibrationKey, frames_digest, read_cache, write_cache
from calibration.frames import read_frames
from calibration.quantize import QuantizeReport, quantize_int8
from calibration.ranges import METHODS, activation_tensors, collect_ranges
from export.surgery import prototype_selection_matmuls
from pem_rt.command import run_command
from pem_rt.engine_meta import sha256_file
from pem_rt.errors import PemError
from pem_rt.lineage import INT8, SCRATCH, pick_reference, require_reference
from pem_rt.model_meta import ModelMeta
from pem_rt.paths import check_output_file


@dataclass(frozen=True)
class CalibrationResult:
    qdq_onnx: Path
    cache: Path
    reused_cache: bool
    report: QuantizeReport
    seconds: float


def read_meta(path: Path) -> ModelMeta:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf decode errors
        raise PemError(f"--onnx {path} is not a readable ONNX file; re-export it with `pem export`") from None
    return ModelMeta.from_props({p.key: p.value for p in model.metadata_props}, str(path))


def calibrate(
    reference: Path,
    calib_data: str | Path,
    out: Path,
    cache: Path,
    method: str = "percentile",
    batches: int = 32,
    percentile: float = 99.99,
    exclude: tuple[str, ...] = (),
    high_precision: str = "fp16",
    role: str = INT8,
) -> CalibrationResult:
    """Calibrate ``reference`` (a graph from `pem export`) and write its INT8 Q/DQ graph to ``out``
    (lineage ``role``: INT8, or SCRATCH for `pem compare`'s graphs)."""
    if method not in METHODS:
        raise PemError(f"unknown --calib-method {method}; choose one of {', '.join(METHODS)}")
    if not reference.is_file():
        raise PemError(f"--onnx {reference} does not exist; export one with `pem export --size HxW`")
    start = time.perf_counter()
    require_reference(reference, also=(role,) if role == SCRATCH else ())
    meta = read_meta(reference)
    if meta.batch not in (0, 1):
        raise PemError(
            f"{reference} has a static batch of {meta.batch}; calibrate a batch-1 or dynamic export"
        )
    size = (meta.input_height, meta.input_width)
    frames = read_frames(calib_data, size, batches)
    key = CalibrationKey(
        model_sha256=sha256_file(reference),
        input_size=size,
        method=method,
        percentile=percentile if method == "percentile" else None,
        num_frames=len(frames),
        frames_sha256=frames_digest(frames),
    )
    model = onnx.load(str(reference))
    tensors = activation_tensors(model, exclude_nodes=prototype_selection_matmuls(model))
    scales = read_cache(cache, key)
    if scales is not None and set(scales) != set(tensors):
        missing = len(set(tensors) - set(scales))
        print(f"calibration cache {cache} lacks {missing} of {len(tensors)} tensors: calibrating again")
        scales = None
    reused = scales is not None
    if reused:
        print(
            f"calibration cache {cache} matches (model, size, {method}, {len(frames)} frames): "
            "skipping calibration"
        )
    else:
        print(f"calibrating {len(tensors)} activation tensors on {len(frames)} frames ({method})")
        amax = collect_ranges(reference, tensors, frames, method, percentile)
        write_cache(cache, key, amax)
        print(f"wrote calibration cache {cache}")
    report = quantize_int8(reference, out, cache, frames[:1], exclude, high_precision, role)
    return CalibrationResult(out, cache, reused, report, time.perf_counter() - start)


def add_calibration_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("INT8 calibration")
    g.add_argument(
        "--calib-data",
        default=None,
        help="image folder, video file, or 'skimage' (scikit-image's bundled photos)",
    )
    g.add_argument(
        "--calib-method",
        choices=METHODS,
        default="percentile",
        help="range method (default percentile: on PEM it kept mIoU where entropy lost points; "
        "`pem compare --calib-methods entropy,max,percentile` measures all three on your data)",
    )
    g.add_argument("--calib-batches", type=int, default=32, help="frames used for calibration (default 32)")
    g.add_argument("--calib-percentile", type=float, default=99.99, help="for --calib-method percentile")
    g.add_argument(
        "--calib-cache",
        type=Path,
        default=None,
        help="calibration cache file (default: <model stem>.calib beside the model)",
    )
    g.add_argument(
        "--int8-exclude",
        action="append",
        default=[],
        metavar="REGEX",
        help="keep nodes whose name matches out of INT8 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pem calibrate", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument(
        "--onnx",
        type=Path,
        help="reference graph from `pem export` (default: the reference graph under runs/, by lineage)",
    )
    p.add_argument("--out", type=Path, help="Q/DQ ONNX to write (default: <model stem>.int8.onnx)")
    p.add_argument(
        "--high-precision",
        choices=("fp16", "fp32"),
        default="fp16",
        help="precision of what stays out of INT8 (default fp16)",
    )
    add_calibration_args(p)
    return p


def default_reference() -> Path:
    """The reference graph under runs/ (by lineage: never an FP16, INT8, TensorRT or comparison graph)."""
    return pick_reference("--onnx")


def _run(args: argparse.Namespace) -> None:
    reference = args.onnx or default_reference()
    if args.calib_data is None:
        raise PemError("--calib-data is required: an image folder, a video, or 'skimage'")
    out = args.out or reference.with_suffix(".int8.onnx")
    cache = args.calib_cache or reference.with_suffix(".calib")
    check_output_file(out, "--out", "model.int8.onnx")
    check_output_file(cache, "--calib-cache", "model.calib")
    result = calibrate(
        reference,
        args.calib_data,
        out,
        cache,
        args.calib_method,
        args.calib_batches,
        args.calib_percentile,
        tuple(args.int8_exclude),
        args.high_precision,
    )
    print(
        f"wrote {out}: {result.report.quantized_nodes} nodes in INT8 ({result.report.qdq_pairs} Q/DQ pairs), "
        f"{len(result.report.excluded)} kept out, in {result.seconds:.0f} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("calibrate", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
