"""`pem dataset check --data DIR`: read every file of a dataset.yaml dataset once and report.

Prints images per split, images per class and pixel share per class, then every problem, one line each
with the file (training/dataset_check.py lists what is checked), and writes a PNG bar chart of the
class counts. Exits 1 when anything would break training (`pem train` runs the same check first).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pem_rt.command import run_command


@dataclass(frozen=True)
class CheckConfig:
    data: Path
    splits: tuple[str, ...]
    chart: Path | None
    progress: bool


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pem dataset", description="Tools for datasets described by dataset.yaml."
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="check")
    c = sub.add_parser("check", help="counts per split and class, every problem with its file, a bar chart")
    c.add_argument("--data", type=Path, required=True, help="dataset folder (holds dataset.yaml)")
    c.add_argument(
        "--splits", default="train,val", help="comma-separated splits to check (default train,val)"
    )
    c.add_argument(
        "--chart",
        type=Path,
        default=None,
        help="bar chart PNG (default runs/dataset-check/<dataset name>.png)",
    )
    c.add_argument("--no-chart", action="store_true", help="write no chart")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run_check(cfg: CheckConfig) -> int:
    from training.dataset_check import check_dataset, write_chart

    report = check_dataset(cfg.data, cfg.splits, progress=cfg.progress)
    print(report.text())
    if cfg.chart is not None and report.meta is not None:
        print(f"wrote {write_chart(report, cfg.chart)}")
    return 1 if report.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    def body(args: argparse.Namespace) -> int:
        from training.data.spec import load_spec

        splits = tuple(s for s in args.splits.split(",") if s)
        chart = (
            None
            if args.no_chart
            else args.chart or Path("runs/dataset-check") / f"{load_spec(args.data).name}.png"
        )
        return run_check(CheckConfig(args.data, splits, chart, progress=not args.no_progress))

    return run_command("dataset", build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
