"""`python training/train.py --preset cityscapes-r50 --data DIR --out RUN_DIR`: train PEM with the
reference recipe, on one process or many (`torchrun --nproc_per_node N training/train.py ...`).

Writes into RUN_DIR: last.pt (every --checkpoint-every steps and at the end) and best.pt (best val
mIoU, or PQ for panoptic), metrics.csv, eval/step_N.json, loss_curve.png, tensorboard/ (if installed).
Checkpoints are written atomically; `--resume` continues a run exactly where last.pt left it (same data
order, same random draws, same losses on CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pem_rt.command import run_command
from pem_rt.errors import PemError
from training.cli_args import add_model_args, parse_size
from training.data.loader import DATASET_NAMES, DEFAULTS

# Reference base learning rates (configs of the PEM repository): Cityscapes 7e-4, ADE20K 4e-4.
DEFAULT_LR = {"cityscapes": 7e-4, "ade20k": 4e-4, "coco-panoptic": 1e-4}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pem train", description="Train PEM (single process, or under torchrun for DDP)."
    )
    add_model_args(p)
    d = p.add_argument_group("data")
    d.add_argument("--data", type=Path, required=True, help="dataset root (e.g. the Cityscapes folder)")
    d.add_argument(
        "--dataset", choices=DATASET_NAMES, default=None, help="dataset format (default: the preset's)"
    )
    d.add_argument("--train-split", default="train", help="training split (default train)")
    d.add_argument(
        "--val-split", default="val", help="validation split; '' disables evaluation (default val)"
    )
    d.add_argument("--crop", type=parse_size, default=None, help="crop HxW (default 512x1024 / 512x512)")
    d.add_argument("--base-size", type=int, default=None, help="short side at scale 1.0 (default 1024 / 512)")
    d.add_argument("--scale-range", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"))
    d.add_argument("--no-color-jitter", action="store_true", help="disable SSD photometric jitter")
    d.add_argument(
        "--workers",
        type=int,
        default=min(8, max((os.cpu_count() or 2) // 2, 0)),
        help="data-loading processes (default: half the CPUs, at most 8)",
    )
    d.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--batch-size", type=int, default=16, help="images per process per micro-batch")
    o.add_argument("--accumulate", type=int, default=1, help="micro-batches per optimiser step")
    o.add_argument("--iters", type=int, default=90000, help="optimiser steps (default 90000)")
    o.add_argument("--lr", type=float, default=None, help="base lr (default 7e-4 Cityscapes, 4e-4 ADE20K)")
    o.add_argument("--weight-decay", type=float, default=0.05)
    o.add_argument("--backbone-lr-mult", type=float, default=0.1)
    o.add_argument(
        "--warmup-iters", type=int, default=0, help="linear warm-up steps (default 0, as the reference)"
    )
    o.add_argument("--clip-grad", type=float, default=0.01, help="full-model grad-norm clip (0 = off)")
    o.add_argument(
        "--amp",
        choices=("auto", "off", "bf16", "fp16"),
        default="auto",
        help="mixed precision (auto: bf16 or fp16 on GPU, off on CPU)",
    )
    lo = p.add_argument_group("loss")
    lo.add_argument("--points", type=int, default=12544, help="sampled points per mask (0 = every pixel)")
    lo.add_argument("--class-weight", type=float, default=2.0)
    lo.add_argument("--mask-weight", type=float, default=5.0)
    lo.add_argument("--dice-weight", type=float, default=5.0)
    lo.add_argument("--no-object-weight", type=float, default=0.1)
    w = p.add_argument_group("weights and run")
    w.add_argument("--backbone-weights", type=Path, default=None, help="ImageNet backbone (.pth/.pkl)")
    w.add_argument("--weights", type=Path, default=None, help="initial weights: official PEM or a PEM-RT .pt")
    w.add_argument(
        "--resume",
        nargs="?",
        const="last",
        default=None,
        metavar="CKPT",
        help="continue a run (default RUN_DIR/last.pt)",
    )
    w.add_argument("--out", type=Path, default=None, help="run folder (default runs/<preset>)")
    w.add_argument(
        "--eval-every", type=int, default=5000, help="evaluate every N steps (0 = only at the end)"
    )
    w.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N val images only")
    w.add_argument("--eval-short-side", type=int, default=None, help="test-time short side (default native)")
    w.add_argument("--checkpoint-every", type=int, default=1000, help="write last.pt every N steps")
    w.add_argument(
        "--stop-at", type=int, default=None, help="stop after step N (schedule still spans --iters)"
    )
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default cuda if available)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    def body(args: argparse.Namespace) -> int:
        from pem_rt.paths import check_output_dir
        from training.trainer import train

        check_output_dir(args.out, "--out")
        return train(args)

    return run_command("train", build_parser(), body, argv)


def validate(args: argparse.Namespace) -> None:
    for flag, low in (("batch_size", 1), ("accumulate", 1), ("iters", 1), ("checkpoint_every", 1),
                      ("eval_every", 0), ("workers", 0), ("warmup_iters", 0)):  # fmt: skip
        if getattr(args, flag) < low:
            raise PemError(f"--{flag.replace('_', '-')} must be >= {low}, got {getattr(args, flag)}")
    if args.eval_limit is not None and args.eval_limit < 1:
        raise PemError(f"--eval-limit must be >= 1, got {args.eval_limit}")
    if args.stop_at is not None and not 1 <= args.stop_at <= args.iters:
        raise PemError(f"--stop-at must be in 1..--iters ({args.iters}), got {args.stop_at}")
    lo, hi = args.scale_range
    if not 0 < lo <= hi:
        raise PemError(f"--scale-range {lo} {hi}: need 0 < MIN <= MAX")
    if args.points < 0:
        raise PemError(f"--points must be >= 0, got {args.points}")


def resolve_defaults(args: argparse.Namespace, dataset: str) -> dict[str, Any]:
    crop, base, short = DEFAULTS[dataset]
    return {
        "crop": args.crop or crop,
        "base_size": args.base_size or base,
        "eval_short_side": args.eval_short_side if args.eval_short_side is not None else short,
        "lr": args.lr if args.lr is not None else DEFAULT_LR[dataset],
    }


if __name__ == "__main__":
    sys.exit(main())
