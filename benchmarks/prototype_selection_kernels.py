"""Fused prototype selection vs the naive einsum + masked_fill + argmax + gather: time and peak extra memory
at the 1/8, 1/16 and 1/32 feature scales of a 1024 x 2048 image (B = 1, Q = 100, C = 256, 8 heads).

    python benchmarks/prototype_selection_kernels.py                 # CPU: host-compiled kernel math
    python benchmarks/prototype_selection_kernels.py --device cuda   # GPU: the real kernels

Peak extra memory: on CPU the naive figure is its B x heads x N x Q fp32 similarity tensor (a lower bound:
masked_fill makes a second one) and the fused figure is the kernels' workspace (pem::ps::workspaceSize, a
bound by construction); on CUDA both are measured with torch.cuda.max_memory_allocated. Times are medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from training.model.prototype_selection import prototype_selection as naive_prototype_selection

SCALES = {"1/32": (32, 64), "1/16": (64, 128), "1/8": (128, 256)}
BATCH, QUERIES, CHANNELS, HEADS = 1, 100, 256, 8


@dataclass(frozen=True)
class Row:
    scale: str
    tokens: int
    naive_bytes: int
    fused_bytes: int
    naive_ms: float | None
    fused_ms: float | None
    same_output: bool | None

    @property
    def ratio(self) -> float:
        return self.naive_bytes / self.fused_bytes


def _median_ms(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def make_inputs(
    tokens: int, device: str, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(BATCH, tokens, CHANNELS, generator=gen), dim=-1)
    q = torch.nn.functional.normalize(torch.randn(BATCH, QUERIES, CHANNELS, generator=gen), dim=-1)
    m = torch.randn(BATCH, QUERIES, tokens, generator=gen)
    return f.to(device, dtype), q.to(device, dtype), m.to(device, dtype)


def run_cpu(scales: Sequence[str], repeats: int, time_fused: bool) -> list[Row]:
    from plugins import hostref

    rows = []
    for scale in scales:
        h, w = SCALES[scale]
        tokens = h * w
        f, q, m = make_inputs(tokens, "cpu", torch.float32)
        naive_bytes = BATCH * HEADS * tokens * QUERIES * 4
        fused_bytes = hostref.prototype_workspace_bytes(BATCH, QUERIES, CHANNELS, HEADS, tokens=tokens)

        def naive(f: torch.Tensor = f, q: torch.Tensor = q, m: torch.Tensor = m) -> torch.Tensor:
            return naive_prototype_selection(f, q, m, HEADS)

        naive_ms = _median_ms(naive, repeats, lambda: None)
        fused_ms, same = None, None
        if time_fused:
            arrays = (f.numpy(), q.numpy(), m.numpy())

            def fused(a: tuple[np.ndarray, ...] = arrays) -> tuple[np.ndarray, np.ndarray]:
                return hostref.prototype_selection(a[0], a[1], a[2], HEADS)

            fused_ms = _median_ms(fused, 1, lambda: None)
            prototypes, _ = fused()
            same = bool(torch.equal(torch.from_numpy(prototypes), naive()))
        rows.append(Row(scale, tokens, naive_bytes, fused_bytes, naive_ms, fused_ms, same))
    return rows


def run_cuda(scales: Sequence[str], repeats: int, dtype: torch.dtype) -> list[Row]:
    from plugins import cuda_ops

    lib = cuda_ops.library()
    rows = []
    for scale in scales:
        h, w = SCALES[scale]
        tokens = h * w
        f, q, m = make_inputs(tokens, "cuda", dtype)
        torch.cuda.synchronize()

        def peak(fn: Callable[[], object]) -> int:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            result = fn()
            torch.cuda.synchronize()
            del result
            return torch.cuda.max_memory_allocated() - base

        def naive(f: torch.Tensor = f, q: torch.Tensor = q, m: torch.Tensor = m) -> torch.Tensor:
            return naive_prototype_selection(f, q, m, HEADS)

        def fused(f: torch.Tensor = f, q: torch.Tensor = q, m: torch.Tensor = m) -> torch.Tensor:
            return cuda_ops.prototype_selection(f, q, m, HEADS, lib=lib)[0]

        output_bytes = BATCH * QUERIES * CHANNELS * f.element_size()
        naive_bytes = peak(naive) - output_bytes
        fused_bytes = peak(fused) - output_bytes
        naive_ms = _median_ms(naive, repeats, torch.cuda.synchronize)
        fused_ms = _median_ms(fused, repeats, torch.cuda.synchronize)
        # fp16: the kernel accumulates in fp32, so its reference is the naive path on the same values in fp32
        # (PyTorch's fp16 matmul rounds every score to fp16 first and may flip near-ties)
        reference = naive_prototype_selection(f.float(), q.float(), m.float(), HEADS).to(f.dtype)
        same = bool(torch.equal(reference, fused()))
        rows.append(Row(scale, tokens, naive_bytes, max(fused_bytes, 1), naive_ms, fused_ms, same))
    return rows


def format_rows(rows: Sequence[Row], device: str) -> str:
    lines = [
        f"prototype selection, B={BATCH} Q={QUERIES} C={CHANNELS} heads={HEADS}, device {device}",
        f"{'scale':<6} {'N':>6} {'naive extra':>12} {'fused extra':>12} {'ratio':>8} "
        f"{'naive ms':>9} {'fused ms':>9} {'same':>5}",
    ]
    for r in rows:
        naive_ms = f"{r.naive_ms:9.2f}" if r.naive_ms is not None else f"{'-':>9}"
        fused_ms = f"{r.fused_ms:9.2f}" if r.fused_ms is not None else f"{'-':>9}"
        same = "-" if r.same_output is None else ("yes" if r.same_output else "NO")
        lines.append(
            f"{r.scale:<6} {r.tokens:>6} {r.naive_bytes / 2**20:>9.2f} MB {r.fused_bytes / 2**20:>9.3f} MB "
            f"{r.ratio:>7.0f}x {naive_ms} {fused_ms} {same:>5}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--scales", nargs="+", choices=list(SCALES), default=list(SCALES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fp16", action="store_true", help="CUDA only: fp16 features, queries and logits")
    parser.add_argument(
        "--no-fused-time", action="store_true", help="CPU: skip timing the (scalar) host loop"
    )
    args = parser.parse_args(argv)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("error: --device cuda needs a CUDA GPU and a CUDA build of PyTorch", file=sys.stderr)
            return 1
        rows = run_cuda(args.scales, args.repeats, torch.float16 if args.fp16 else torch.float32)
    else:
        rows = run_cpu(args.scales, args.repeats, not args.no_fused_time)
    print(format_rows(rows, args.device))
    ok = all(r.same_output is not False for r in rows)
    print(f"bench_prototype_selection: {'PASSED' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
