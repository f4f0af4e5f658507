"""`python benchmarks/gpu_bench.py --engine A.engine [--engine B.engine ...] [--checkpoint ckpt.pt]`:
GPU numbers, on a machine with an NVIDIA GPU and TensorRT (classic or RTX). Not run on CPU-only machines.

For every engine (FP32 / FP16 / INT8 ...): trtexec-style host latency percentiles (p50/p90/p99, frame in ->
label map out, H2D and D2H included) and throughput, with and without CUDA graphs, and the GPU memory the
engine holds. With --checkpoint (or --preset for random weights): PyTorch eager FPS of the same model at
the same size on the same GPU, the paper's baseline setting. Writes benchmarks/results/gpu.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import save_json
from pem_rt.sizes import parse_size


def _latencies(fn: Callable[[], object], warmup: int, iterations: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _summary(times: list[float], batch: int) -> dict[str, float]:
    q = np.percentile(times, [50, 90, 99])
    return {
        "p50_ms": float(q[0]),
        "p90_ms": float(q[1]),
        "p99_ms": float(q[2]),
        "mean_ms": statistics.fmean(times),
        "fps": 1000.0 * batch / statistics.fmean(times),
    }


def gpu_memory_used_mb() -> float:
    from runtime.backends.cuda_runtime import cudart

    rt = cudart()
    _err, free, total = rt.cudaMemGetInfo()
    return float(total - free) / 2**20


def bench_engine(engine: Path, warmup: int, iterations: int) -> dict[str, Any]:
    from pem_rt.engine_meta import read_sidecar
    from runtime.backends.tensorrt_backend import TensorRTBackend

    sidecar = read_sidecar(engine)
    shape = sidecar.inputs[0].shape
    batch = max(int(shape[0]), 1)
    frame = np.random.default_rng(0).integers(0, 256, (batch, *shape[1:]), dtype=np.uint8)
    row: dict[str, Any] = {"engine": engine.name, "precision": sidecar.precision, "input": list(shape)}
    for graph in (True, False):
        before = gpu_memory_used_mb()
        backend = TensorRTBackend(engine, cuda_graph=graph)
        try:
            row["gpu_memory_mb"] = gpu_memory_used_mb() - before
            stats = _summary(_latencies(lambda b=backend: b.infer(frame), warmup, iterations), batch)
        finally:
            backend.close()
        row["cuda_graph" if graph else "no_cuda_graph"] = stats
        print(
            f"  {engine.name} {'with' if graph else 'without'} CUDA graphs: p50 {stats['p50_ms']:.2f} ms, "
            f"p99 {stats['p99_ms']:.2f} ms, {stats['fps']:.1f} FPS",
            flush=True,
        )
    return row


def bench_torch(source: Any, size: tuple[int, int], warmup: int, iterations: int) -> dict[str, Any]:
    """PyTorch eager latency of the model ``source`` (export.export_onnx.ModelSource) names."""
    import torch

    from export.deploy_model import DeployModel
    from export.export_onnx import load_model

    model = load_model(source)[0].cuda()
    deploy = DeployModel(model, "semantic").eval().cuda()
    frame = torch.randint(0, 256, (1, *size, 3), dtype=torch.uint8, device="cuda")

    def run() -> None:
        with torch.no_grad():
            deploy(frame)
        torch.cuda.synchronize()

    stats = _summary(_latencies(run, warmup, iterations), 1)
    stats["device"] = torch.cuda.get_device_name(0)
    print(
        f"  PyTorch eager {model.cfg.name} {size[0]}x{size[1]}: {stats['fps']:.1f} FPS on {stats['device']}"
    )
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", type=Path, action="append", default=[], help="engine to measure (repeatable)")
    p.add_argument("--checkpoint", type=Path, help="PyTorch eager baseline from this checkpoint")
    p.add_argument("--preset", help="PyTorch eager baseline with random weights of this preset")
    p.add_argument("--size", default=None, help="HxW of the PyTorch baseline (default: the first engine's)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iterations", type=int, default=200)
    args = p.parse_args(argv)
    from runtime.backends.loader import tensorrt_unavailable

    reason = tensorrt_unavailable()
    if reason:
        print(f"gpu_bench: {reason}; run it on a machine with an NVIDIA GPU and TensorRT", file=sys.stderr)
        return 1
    results: dict[str, Any] = {
        "engines": [bench_engine(e, args.warmup, args.iterations) for e in args.engine]
    }
    if args.checkpoint or args.preset:
        from export.export_onnx import ModelSource

        source = ModelSource(args.checkpoint, args.preset, random_weights=args.checkpoint is None)
        if args.size:
            h, w = parse_size(args.size, "--size")
        elif results["engines"]:
            h, w = results["engines"][0]["input"][1:3]
        else:
            p.error("--size is needed without --engine")
        results["torch_eager"] = bench_torch(source, (h, w), args.warmup, args.iterations // 4)
    print(json.dumps(results, indent=2))
    save_json("gpu", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
