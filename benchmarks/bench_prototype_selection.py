"""Prototype selection at the 1/32, 1/16 and 1/8 token counts of a 1024x2048 frame (B=1, Q=100, C=256,
8 heads): the naive PyTorch reference (einsum + mask + argmax + gather) vs the streaming PyTorch version
vs our kernel compiled for the host (the plugin's own code, one CPU thread). Time = median; peak extra
memory = measured peak RSS of a fresh process over its baseline during a call after one warm-up call, so
every temporary of a call counts and one-time buffers (BLAS packing, thread pools) do not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import median_ms, peak_rss_mb_in_subprocess

SCALES = {"1/32": (32, 64), "1/16": (64, 128), "1/8": (128, 256)}

_SETUP = """
import torch
from training.model import prototype_selection as ps
torch.set_num_threads({threads})
def setup():
    g = torch.Generator().manual_seed(0)
    n = {tokens}
    f = torch.nn.functional.normalize(torch.randn(1, n, 256, generator=g), dim=-1)
    q = torch.nn.functional.normalize(torch.randn(1, 100, 256, generator=g), dim=-1)
    m = torch.randn(1, 100, n, generator=g)
    return f, q, m
"""
_RUN = {
    "naive": "def run(s):\n    with torch.no_grad():\n        ps.prototype_selection(*s, 8)\n",
    "streaming": "def run(s):\n    with torch.no_grad():\n"
    "        ps.gather_prototypes(s[0], ps.prototype_indices_streaming(*s, 8))\n",
    "kernel": "from plugins import hostref\n"
    "def run(s):\n    hostref.prototype_selection(*(t.numpy() for t in s), 8)\n",
}


def measure_scale(scale: str, tokens: int, repeats: int) -> dict[str, Any]:
    import torch

    from plugins import hostref
    from training.model import prototype_selection as ps

    g = torch.Generator().manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(1, tokens, 256, generator=g), dim=-1)
    q = torch.nn.functional.normalize(torch.randn(1, 100, 256, generator=g), dim=-1)
    m = torch.randn(1, 100, tokens, generator=g)
    arrays = (f.numpy(), q.numpy(), m.numpy())
    row: dict[str, Any] = {"scale": scale, "tokens": tokens}
    with torch.no_grad():
        row["naive_ms"] = median_ms(lambda: ps.prototype_selection(f, q, m, 8), repeats)
        row["streaming_ms"] = median_ms(
            lambda: ps.gather_prototypes(f, ps.prototype_indices_streaming(f, q, m, 8)), repeats
        )
    row["kernel_ms"] = median_ms(lambda: hostref.prototype_selection(*arrays, 8), max(1, repeats // 2))
    for name, body in _RUN.items():
        code = _SETUP.format(threads=torch.get_num_threads(), tokens=tokens) + body
        row[f"{name}_peak_mb"] = peak_rss_mb_in_subprocess(code)
    row["kernel_workspace_mb"] = hostref.prototype_workspace_bytes(1, 100, 256, 8, tokens=tokens) / 2**20
    row["streaming_speedup"] = row["naive_ms"] / row["streaming_ms"]
    row["streaming_memory_ratio"] = row["naive_peak_mb"] / max(row["streaming_peak_mb"], 0.1)
    row["kernel_memory_ratio"] = row["naive_peak_mb"] / max(row["kernel_peak_mb"], 0.1)
    return row


def measure(repeats: int) -> list[dict[str, Any]]:
    rows = []
    for scale, (h, w) in SCALES.items():
        row = measure_scale(scale, h * w, repeats)
        rows.append(row)
        print(
            f"  {scale:>5} ({row['tokens']} tokens): streaming {row['streaming_speedup']:.2f}x faster, "
            f"peak memory naive {row['naive_peak_mb']:.0f} MB / streaming "
            f"{row['streaming_peak_mb']:.0f} MB / host kernel {row['kernel_peak_mb']:.1f} MB",
            flush=True,
        )
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Time and peak extra memory per token count, naive vs streaming vs host kernel (log scales)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    tokens = [r["tokens"] for r in rows]
    names = {
        "naive": "naive (einsum+mask+argmax)",
        "streaming": "streaming PyTorch",
        "kernel": "our kernel (host)",
    }
    panels = (("ms", "CPU time (ms)"), ("peak_mb", "peak extra memory (MB)"))
    for ax, (suffix, label) in zip(axes, panels, strict=True):
        for (kind, name), style in zip(names.items(), ("s--", "o-", "^:"), strict=True):
            ax.plot(tokens, [max(r[f"{kind}_{suffix}"], 0.01) for r in rows], style, label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tokens (1/32, 1/16, 1/8 of 1024x2048)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_title("prototype selection time (Q=100, C=256, 8 heads)")
    axes[1].set_title("peak extra memory per call")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
