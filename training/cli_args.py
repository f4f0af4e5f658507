"""Argument groups shared by the training-side commands (model selection, sizes)."""

from __future__ import annotations

import argparse

from pem_rt.errors import PemError
from training.dataset_meta import DatasetMeta
from training.model.config import ARCHITECTURES, PRESETS, ModelConfig, get_preset, with_ablation


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--preset",
        default="cityscapes-r50",
        help=f"model: an architecture ({', '.join(ARCHITECTURES)}) whose classes come from the data "
        f"(pem train; elsewhere Cityscapes'), or one of: {', '.join(PRESETS)} (default: cityscapes-r50)",
    )
    group.add_argument(
        "--cross-attention",
        choices=("pem", "masked"),
        default=None,
        help="ablation: PEM-CA (default) or Mask2Former masked cross-attention",
    )
    group.add_argument("--no-csm", action="store_true", help="ablation: disable context self-modulation")
    group.add_argument(
        "--decoder-layers",
        type=int,
        default=None,
        help="ablation: number of transformer decoder layers (default 6)",
    )
    group.add_argument(
        "--task",
        choices=("semantic", "panoptic", "instance"),
        default=None,
        help="post-processing task (default: the preset's)",
    )


def model_config_from_args(args: argparse.Namespace, dataset: DatasetMeta | None = None) -> ModelConfig:
    """The model the flags ask for; an architecture preset gets ``dataset``'s classes."""
    if args.decoder_layers is not None and args.decoder_layers < 1:
        raise PemError(f"--decoder-layers must be >= 1, got {args.decoder_layers}")
    return with_ablation(
        get_preset(args.preset, dataset),
        cross_attention=args.cross_attention,
        use_csm=False if args.no_csm else None,
        num_layers=args.decoder_layers,
        task=args.task,
    )
