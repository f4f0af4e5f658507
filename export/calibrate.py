"""`python export/calibrate.py --onnx model.onnx --calib-data DIR|VIDEO|skimage`: INT8 Q/DQ ONNX.

The `pem calibrate` command: calibration/calibrate.py does the work (its flags: calibration/cli_args.py);
export/int8_calibrate.py adds what only the export stage knows, the prototype-selection MatMuls that graph
surgery replaces by a plugin (they stay out of INT8). A second run with the same model, size, method and
frames reuses the calibration cache.

``--sensitivity`` also measures, on held-out frames, how much each model part costs in INT8 alone
(export/int8_sensitivity.py: a table and a bar chart beside the graph); ``--max-miou-drop D`` writes the
INT8 graph with the fewest, most sensitive parts kept in the high precision whose measured mIoU drop is at
most D points (export/int8_budget.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from calibration.calibrate import CalibrationConfig, default_reference
from calibration.cli_args import add_calibration_args, config_from_args
from export.int8_budget import BudgetRequest, calibrate_within_budget, sensitivity_prefix
from export.int8_calibrate import calibrate_for_tensorrt
from export.int8_eval import Yardstick, add_eval_args, calibration_frames, held_out_from_args
from export.int8_sensitivity import analyse, markdown_table, report_paths, write_report
from pem_rt.command import run_command
from pem_rt.paths import check_output_file


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
    p.add_argument(
        "--sensitivity",
        action="store_true",
        help="also quantise one model part at a time and write its label agreement and mIoU drop vs "
        "FP32 on held-out frames: <out stem>.sensitivity.{md,json,png}",
    )
    add_calibration_args(p)
    add_eval_args(p)
    return p


def _run(args: argparse.Namespace) -> None:
    reference = args.onnx or default_reference()
    config = config_from_args(args, args.high_precision)
    out = args.out or reference.with_suffix(".int8.onnx")
    check_output_file(out, "--out", "model.int8.onnx")
    check_output_file(config.cache or reference.with_suffix(".calib"), "--calib-cache", "model.calib")
    if args.max_miou_drop is not None:
        request = BudgetRequest(args.max_miou_drop, held_out_from_args(args))
        budget = calibrate_within_budget(reference, out, config, request)
        kept = ", ".join(budget.excluded) or "none"
        print(
            f"wrote {out}: mIoU drop {budget.measured.drop:.2f} points <= {args.max_miou_drop} "
            f"(agreement {budget.measured.agreement * 100:.2f}%), model parts kept out of INT8: {kept}"
        )
        return
    if args.sensitivity:
        _sensitivity(reference, out, config, args)
    result = calibrate_for_tensorrt(reference, out, config)
    print(
        f"wrote {out}: {result.report.quantized_nodes} nodes in INT8 ({result.report.qdq_pairs} Q/DQ pairs), "
        f"{len(result.report.excluded)} kept out, in {result.seconds:.0f} s"
    )


def _sensitivity(reference: Path, out: Path, config: CalibrationConfig, args: argparse.Namespace) -> None:
    held_out = held_out_from_args(args)
    prefix = sensitivity_prefix(out)
    for path in report_paths(prefix):
        check_output_file(path, "--out", "model.int8.onnx")
    yardstick = Yardstick(reference, held_out, calibration_frames(config.data, reference, config.batches))
    sens = analyse(reference, config, yardstick)
    _, md, png = write_report(sens, prefix)
    print(markdown_table(sens), end="")
    print(f"wrote {md}, {md.with_suffix('.json')} and {png}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("calibrate", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
