"""`python export/calibrate.py --onnx model.onnx --calib-data DIR|VIDEO|skimage`: INT8 Q/DQ ONNX.

The `pem calibrate` command: calibration/calibrate.py does the work (its flags: calibration/cli_args.py);
this command adds what only the export stage knows, the prototype-selection MatMuls that graph surgery
replaces by a plugin (they stay out of INT8). A second run with the same model, size, method and
frames reuses the calibration cache.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import onnx

from calibration.calibrate import CalibrationConfig, CalibrationResult, calibrate, default_reference
from calibration.cli_args import add_calibration_args, config_from_args
from export.surgery import prototype_selection_matmuls
from pem_rt.command import run_command
from pem_rt.errors import PemError
from pem_rt.lineage import INT8
from pem_rt.paths import check_output_file


def calibrate_for_tensorrt(
    reference: Path, out: Path, config: CalibrationConfig, role: str = INT8
) -> CalibrationResult:
    """:func:`calibration.calibrate.calibrate` with the nodes graph surgery replaces kept out of INT8
    (``role``: the lineage role of the result, SCRATCH for `pem compare`'s graphs)."""
    if not reference.is_file():
        raise PemError(f"--onnx {reference} does not exist; export one with `pem export --size HxW`")
    try:
        model = onnx.load(str(reference))
    except Exception:  # protobuf decode errors
        raise PemError(
            f"--onnx {reference} is not a readable ONNX file; re-export it with `pem export`"
        ) from None
    return calibrate(reference, out, config, keep_out=prototype_selection_matmuls(model), role=role)


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


def _run(args: argparse.Namespace) -> None:
    reference = args.onnx or default_reference()
    config = config_from_args(args, args.high_precision)
    out = args.out or reference.with_suffix(".int8.onnx")
    check_output_file(out, "--out", "model.int8.onnx")
    check_output_file(config.cache or reference.with_suffix(".calib"), "--calib-cache", "model.calib")
    result = calibrate_for_tensorrt(reference, out, config)
    print(
        f"wrote {out}: {result.report.quantized_nodes} nodes in INT8 ({result.report.qdq_pairs} Q/DQ pairs), "
        f"{len(result.report.excluded)} kept out, in {result.seconds:.0f} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("calibrate", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
