"""PEM-CA vs Mask2Former's masked cross-attention: latency and GFLOPs of one decoder layer (at the
stride-8 level, the largest) and of the whole transformer decoder, as the input resolution grows.

The paper's open question: how does PEM-CA's cost scale with resolution against masked attention?
Both are linear in the number of tokens N; masked attention does softmax-weighted sums over all N per
head and query, PEM-CA one argmax and one gather.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import machine, median_ms, save_json
from pem_rt.sizes import parse_size
from training.model import build_model, get_preset, with_ablation
from training.model.cross_attention import MaskedCrossAttention, PrototypeCrossAttention
from training.model.flops import FlopCounter

SIZES = ((512, 512), (512, 1024), (1024, 2048), (2048, 4096))


def _layer_inputs(h: int, w: int) -> tuple[torch.Tensor, ...]:
    b, q, c = 1, 100, 256
    return (
        torch.randn(b, q, c),
        torch.randn(b, c, h // 8, w // 8),
        torch.randn(b, c, h // 8, w // 8),
        torch.randn(b, q, c),
        torch.randn(b, q, (h // 8) * (w // 8)),
    )


def _gflops(fn: Any) -> float:
    counter = FlopCounter()
    with torch.no_grad(), counter:
        fn()
    return counter.total / 1e9


def measure(sizes: Sequence[tuple[int, int]], repeats: int) -> list[dict[str, Any]]:
    rows = []
    torch.manual_seed(0)
    layers = {"pem": PrototypeCrossAttention(256, 8).eval(), "masked": MaskedCrossAttention(256, 8).eval()}
    decoders = {
        kind: build_model(with_ablation(get_preset("cityscapes-r50"), cross_attention=kind)).predictor.eval()
        for kind in ("pem", "masked")
    }
    for h, w in sizes:
        row: dict[str, Any] = {"size": f"{h}x{w}", "tokens_stride8": (h // 8) * (w // 8)}
        inputs = _layer_inputs(h, w)
        levels = [torch.randn(1, 128, h // s, w // s) for s in (32, 16, 8)]
        mask_features = torch.randn(1, 256, h // 4, w // 4)
        reps = repeats if h * w <= 1024 * 2048 else max(1, repeats // 2)
        for kind in ("pem", "masked"):
            layer, decoder = layers[kind], decoders[kind]

            def run_layer(
                layer: torch.nn.Module = layer, inputs: tuple[torch.Tensor, ...] = inputs
            ) -> object:
                return layer(*inputs)

            def run_decoder(
                d: torch.nn.Module = decoder,
                levels: list[torch.Tensor] = levels,
                mf: torch.Tensor = mask_features,
            ) -> object:
                return d(levels, mf, all_predictions=False)

            with torch.no_grad():
                try:
                    row[f"{kind}_layer_ms"] = median_ms(run_layer, reps)
                    row[f"{kind}_decoder_ms"] = median_ms(run_decoder, reps)
                except RuntimeError as e:  # out of memory at the largest size
                    row[f"{kind}_error"] = str(e).splitlines()[0][:120]
                    continue
            row[f"{kind}_layer_gflops"] = _gflops(run_layer)
            row[f"{kind}_decoder_gflops"] = _gflops(run_decoder)
        if "pem_layer_ms" in row and "masked_layer_ms" in row:
            row["layer_speedup"] = row["masked_layer_ms"] / row["pem_layer_ms"]
            row["decoder_speedup"] = row["masked_decoder_ms"] / row["pem_decoder_ms"]
        rows.append(row)
        print(
            f"  {row['size']:>10}: layer {row.get('layer_speedup', float('nan')):.2f}x, "
            f"decoder {row.get('decoder_speedup', float('nan')):.2f}x faster with PEM-CA",
            flush=True,
        )
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    tokens = [r["tokens_stride8"] for r in rows]
    for ax, what in zip(axes, ("layer", "decoder"), strict=True):
        for kind, style in (("pem", "o-"), ("masked", "s--")):
            ys = [r.get(f"{kind}_{what}_ms") for r in rows]
            pts = [(t, y) for t, y in zip(tokens, ys, strict=True) if y is not None]
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                style,
                label="PEM-CA" if kind == "pem" else "masked attention",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tokens at stride 8 (input 512x512 ... 2048x4096)")
        ax.set_ylabel("CPU latency (ms)")
        ax.set_title("one cross-attention layer" if what == "layer" else "whole decoder (6 layers)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="all", help="'all' or e.g. 512x512,1024x2048")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    sizes = SIZES if args.sizes == "all" else [parse_size(s) for s in args.sizes.split(",")]
    rows = measure(sizes, args.repeats)
    save_json("attention", {"machine": machine(), "rows": rows})
    plot(rows, Path(__file__).parent / "results" / "attention.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
