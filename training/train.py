"""`python training/train.py --preset cityscapes-r50 --data DIR --out RUN_DIR`: train PEM with the
reference recipe, on one process or many (`torchrun --nproc_per_node N training/train.py ...`).

Writes into RUN_DIR: last.pt (every --checkpoint-every steps and at the end) and best.pt (best val
mIoU, or PQ for panoptic), metrics.csv, eval/step_N.json, loss_curve.png, tensorboard/ (if installed).
Checkpoints are written atomically; `--resume` continues a run exactly where last.pt left it (same data
order, same random draws, same losses on CPU). From Python: `training.trainer.train(TrainConfig(...))`
(training/train_config.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pem_rt.command import run_command
from pem_rt.sizes import size_arg
from training.cli_args import add_model_args, model_config_from_args
from training.data.choose import choose_dataset
from training.data.loader import DATASET_NAMES
from training.data.transforms import AugmentConfig
from training.losses.criterion import LossConfig
from training.optim import OptimConfig
from training.qat import QAT_METHODS, QatConfig
from training.train_config import (
    CheckpointConfig,
    DataConfig,
    EvalConfig,
    ScheduleConfig,
    TrainConfig,
    recipe_for,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pem train", description="Train PEM (single process, or under torchrun for DDP)."
    )
    add_model_args(p)
    d = p.add_argument_group("data")
    d.add_argument(
        "--data",
        type=Path,
        required=True,
        help="dataset root (the Cityscapes folder, or one with dataset.yaml)",
    )
    d.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        default=None,
        help="dataset format (default: custom where DIR/dataset.yaml exists, else the preset's)",
    )
    d.add_argument("--train-split", default="train", help="training split (default train)")
    d.add_argument(
        "--val-split", default="val", help="validation split; '' disables evaluation (default val)"
    )
    d.add_argument("--crop", type=size_arg, default=None, help="crop HxW (default 512x1024 / 512x512)")
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
    w.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="initial weights: official PEM or a PEM-RT .pt, of any classes (what fits is kept, the class "
        "head re-initialised; both are printed)",
    )
    w.add_argument(
        "--freeze-backbone", action="store_true", help="train without updating the backbone (small datasets)"
    )
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
    q = p.add_argument_group("quantisation-aware training (fine-tune a trained model for INT8)")
    q.add_argument(
        "--qat",
        action="store_true",
        help="fine-tune --weights with INT8 fake quantisation (NVIDIA ModelOpt); then `pem export` writes "
        "its Q/DQ graph, which `pem build-engine --int8` builds without calibration",
    )
    q.add_argument(
        "--calib-data",
        type=Path,
        default=None,
        help="--qat: image folder of the calibration frames (default: the training split's images)",
    )
    q.add_argument(
        "--calib-method",
        choices=QAT_METHODS,
        default="max",
        help="--qat: initial activation ranges (default max, ModelOpt's QAT default)",
    )
    q.add_argument("--calib-batches", type=int, default=32, help="--qat: calibration frames (default 32)")
    q.add_argument(
        "--calib-percentile", type=float, default=99.99, help="--qat: for --calib-method percentile"
    )
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of the parsed flags; what they leave open comes from the dataset's recipe."""
    dataset, data_classes = choose_dataset(args.preset, args.dataset, args.data)
    model = model_config_from_args(args, data_classes)
    data = DataConfig(args.data, dataset, args.train_split, args.val_split, args.workers)
    recipe = recipe_for(dataset)
    out = args.out or Path("runs") / model.name
    resume = None
    if args.resume is not None:
        resume = out / "last.pt" if args.resume == "last" else Path(args.resume)
    return TrainConfig(
        model=model,
        data=data,
        out=out,
        optim=OptimConfig(
            lr=args.lr if args.lr is not None else recipe.lr,
            iters=args.iters,
            weight_decay=args.weight_decay,
            backbone_multiplier=args.backbone_lr_mult,
            warmup_iters=args.warmup_iters,
        ),
        augment=AugmentConfig(
            args.crop or recipe.crop,
            args.base_size or recipe.base_size,
            tuple(args.scale_range),
            color=not args.no_color_jitter,
        ),
        loss=LossConfig(
            class_weight=args.class_weight,
            mask_weight=args.mask_weight,
            dice_weight=args.dice_weight,
            no_object_weight=args.no_object_weight,
            num_points=args.points,
        ),
        schedule=ScheduleConfig(
            args.batch_size, args.accumulate, args.stop_at, args.clip_grad, args.amp, args.seed
        ),
        eval=EvalConfig(
            args.eval_every,
            args.eval_limit,
            args.eval_short_side if args.eval_short_side is not None else recipe.eval_short_side,
        ),
        checkpoint=CheckpointConfig(
            args.checkpoint_every, resume, args.weights, args.backbone_weights, args.freeze_backbone
        ),
        device=args.device,
        threads=args.threads,
        progress=not args.no_progress,
        qat=QatConfig(args.calib_method, args.calib_data, args.calib_batches, args.calib_percentile)
        if args.qat
        else None,
    )


def _run(args: argparse.Namespace) -> int:
    from pem_rt.paths import check_output_dir
    from training.trainer import train

    check_output_dir(args.out, "--out")
    return train(config_from_args(args))


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("train", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
