"""`python training/model_info.py --preset cityscapes-r50 --size 1024x2048`: parameters and GFLOPs.

GFLOPs follow fvcore's convention (one multiply-add = one FLOP), like the PEM paper, and include the
deformable convolutions fvcore skips. Counting runs on PyTorch's meta device: no compute, no memory.
A size that is not a multiple of 32 is padded like the reference (detectron2's ImageList) does.
``--postprocess exact`` counts the reference's semantic post-processing (every query's mask up-sampled to the
input); ``fast`` the deployable graph's cheaper order: class scores at mask resolution only (the edge cells it
then computes exactly add Q x K per frame pixel on an edge between classes, which depends on the image).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pem_rt.command import run_command
from pem_rt.errors import PemError
from pem_rt.files import atomic_write_text
from pem_rt.model_meta import DEFAULT_POSTPROCESS, POSTPROCESS_MODES
from pem_rt.sizes import size_arg
from training.cli_args import add_model_args, model_config_from_args
from training.model import PEM, ModelConfig, build_model
from training.model.flops import FlopCounter
from training.model.postprocess import semantic_probabilities, semantic_scores

# The paper's numbers (Tables 1-3): params in millions, GFLOPs at the paper's input size. The paper
# counted with fvcore, which skips deformable convolution, so they compare with our count without it.
PAPER: dict[tuple[str, tuple[int, int]], tuple[float, float]] = {
    ("ade20k-r50", (512, 683)): (35.6, 46.9),
    ("cityscapes-r50", (1024, 2048)): (35.6, 240.0),
    ("cityscapes-stdc1", (1024, 2048)): (17.0, 92.0),
    ("cityscapes-stdc2", (1024, 2048)): (21.0, 118.0),
    ("ade20k-r50", (512, 512)): (35.6, 46.9),
    ("ade20k-stdc1", (512, 512)): (17.0, 16.0),
    ("ade20k-stdc2", (512, 512)): (21.0, 19.3),
}
PAPER_NOTES = {
    ("ade20k-r50", (512, 512)): "the paper measured ADE20K at short side 512 (e.g. 512x683), not 512x512: "
    "compare with --size 512x683",
}


@dataclass(frozen=True)
class StageCost:
    name: str
    params: int
    gflops: float


@dataclass(frozen=True)
class ModelInfo:
    preset: str
    size: tuple[int, int]
    padded_size: tuple[int, int]
    stages: tuple[StageCost, ...]
    deform_conv_gflops: float
    deployed_gflops: float
    postprocess: str = "exact"

    @property
    def params(self) -> int:
        return sum(s.params for s in self.stages)

    @property
    def gflops(self) -> float:
        return sum(s.gflops for s in self.stages)


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure(cfg: ModelConfig, size: tuple[int, int], postprocess: str = "exact") -> ModelInfo:
    """Parameters and GFLOPs per stage at input ``size`` (H, W); runs on the meta device. ``postprocess``
    ("exact", the reference, or "fast") is the semantic post-processing counted."""
    div = cfg.size_divisibility
    padded = (-(-size[0] // div) * div, -(-size[1] // div) * div)
    with torch.device("meta"):
        model: PEM = build_model(cfg).eval()
        x = torch.empty(1, 3, *padded)
    counters = [FlopCounter() for _ in range(5)]
    with torch.no_grad():
        with counters[0]:
            feats = model.backbone(x)
        with counters[1]:
            mask_features, levels = model.pixel_decoder(feats)
        with counters[2]:
            preds = model.predictor(levels, mask_features, all_predictions=True)
        with counters[3]:
            if postprocess == "fast":  # the edge cells are data-dependent: not counted
                semantic_probabilities(preds[-1].class_logits, preds[-1].mask_logits)
            else:
                semantic_scores(preds[-1].class_logits, preds[-1].mask_logits, padded, fast=False)
        with counters[4]:
            model.predictor(levels, mask_features, all_predictions=False)
    g = [c.total / 1e9 for c in counters]
    stages = (
        StageCost("backbone", _params(model.backbone), g[0]),
        StageCost("pixel decoder", _params(model.pixel_decoder), g[1]),
        StageCost("transformer decoder", _params(model.predictor), g[2]),
        StageCost("post-processing", 0, g[3]),
    )
    dcn = counters[1].by_op.get("deform_conv2d", 0) / 1e9
    deployed = g[0] + g[1] + g[4] + g[3]
    return ModelInfo(cfg.name, size, padded, stages, dcn, deployed, postprocess)


def format_report(info: ModelInfo) -> str:
    h, w = info.size
    lines = [
        f"{info.preset} at {h}x{w}"
        + (
            f" (padded to {info.padded_size[0]}x{info.padded_size[1]})"
            if info.padded_size != info.size
            else ""
        ),
        f"  {'stage':<24}{'params':>14}{'GFLOPs':>10}",
    ]
    for s in info.stages:
        params = f"{s.params:,}" if s.params else "-"
        name = f"{s.name} ({info.postprocess})" if s.name == "post-processing" else s.name
        lines.append(f"  {name:<24}{params:>14}{s.gflops:>10.1f}")
    lines.append(f"  {'total':<24}{info.params:>14,}{info.gflops:>10.1f}")
    lines.append(
        f"  GFLOPs: fvcore convention (1 multiply-add = 1 FLOP), incl. {info.deform_conv_gflops:.1f} G of "
        f"deformable conv that fvcore skips (without it: {info.gflops - info.deform_conv_gflops:.1f})"
    )
    lines.append(
        f"  deployed graph (intermediate attention masks at their own resolution, same result; "
        f"{info.postprocess} post-processing): {info.deployed_gflops:.1f} GFLOPs"
    )
    key = (info.preset, info.size)
    if key in PAPER:
        p_params, p_gflops = PAPER[key]
        without_dcn = info.gflops - info.deform_conv_gflops
        lines.append(
            f"  paper: {p_params}M params (ours {(info.params / 1e6 / p_params - 1) * 100:+.1f}%), "
            f"{p_gflops} GFLOPs (ours {(without_dcn / p_gflops - 1) * 100:+.1f}% counted like fvcore, "
            f"{(info.gflops / p_gflops - 1) * 100:+.1f}% with deformable conv)"
        )
    if key in PAPER_NOTES:
        lines.append(f"  note: {PAPER_NOTES[key]}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pem model-info", description="Parameters and GFLOPs (paper convention) of a PEM preset."
    )
    add_model_args(parser)
    parser.add_argument(
        "--size",
        type=size_arg,
        default=None,
        help="input HxW (default: 1024x2048 for cityscapes, 512x512 otherwise)",
    )
    parser.add_argument(
        "--postprocess",
        choices=POSTPROCESS_MODES,
        default=DEFAULT_POSTPROCESS,
        help="semantic post-processing counted: exact (the reference's) or fast (pem export --postprocess "
        f"fast); default {DEFAULT_POSTPROCESS}",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    return parser


def _run(args: argparse.Namespace) -> None:
    cfg = model_config_from_args(args)
    size = args.size or ((1024, 2048) if cfg.dataset.name == "cityscapes" else (512, 512))
    if size[0] < 32 or size[1] < 32:
        raise PemError(f"--size {size[0]}x{size[1]} is too small; use at least 32x32")
    info = measure(cfg, size, args.postprocess)
    print(format_report(info))
    if args.json:
        data = asdict(info) | {"params": info.params, "gflops": info.gflops}
        atomic_write_text(args.json, json.dumps(data, indent=2))
        print(f"wrote {args.json}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("model-info", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
