"""`python benchmarks/stream_batching.py --onnx m_dynamic.onnx`: throughput of N streams batched through
one model vs the same N streams one frame per inference call, as a ratio.

Both runs are the real multi-source runtime (runtime/multistream.py, what `pem stream --source A --source B`
runs), headless, on the same backend object and the same synthetic streets (one seed per source), each
source delivering every frame like a file; the only difference is ``max_batch`` (all sources vs 1). The
bare backend is timed the same way (one call of N frames vs N calls of one). Each repeat times both back
to back and the median of the per-repeat ratios is reported, so drifts in machine load cancel out.
Needs a dynamic-batch model (`pem export --dynamic-batch`, engines `pem build-engine --batch 1,4,4`).
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.stream_throughput import FrameListSource
from pem_rt.command import run_command
from pem_rt.errors import PemError
from pem_rt.synthetic import SyntheticScene
from runtime.backends import Backend, BackendOptions, open_backend
from runtime.multistream import MultiStream
from runtime.pipeline import Outputs
from runtime.segmenter import Segmenter


@dataclass(frozen=True)
class Paired:
    batched_fps: float  # all sources' frames per second with batching
    single_fps: float  # the same with one frame per call
    ratio: float  # median of the per-repeat batched/single ratios
    mean_batch: float  # frames per call in the batched runs


def streams_fps(
    segmenter: Segmenter, streams: list[list[np.ndarray]], count: int, max_batch: int
) -> tuple[float, float]:
    """(frames per second over all sources, mean frames per call) of one MultiStream run."""
    sources = [FrameListSource(frames, count) for frames in streams]
    run = MultiStream(
        segmenter,
        sources,
        Outputs(progress_every=0.0),
        max_frames=count,
        max_batch=max_batch,
        log=lambda m: None,
    )
    start = time.perf_counter()
    metrics = run.run()
    elapsed = time.perf_counter() - start
    if metrics.frames != count * len(streams):
        raise PemError(f"the multi-stream run processed {metrics.frames} of {count * len(streams)} frames")
    return metrics.frames / elapsed, metrics.mean_batch


def bare_fps(backend: Backend, images: list[np.ndarray], calls: int, batch: int) -> float:
    """Frames per second of ``backend.infer`` on batches of ``batch`` frames."""
    stacked = [np.concatenate(images[i : i + batch]) for i in range(0, len(images) - batch + 1, batch)]
    start = time.perf_counter()
    for i in range(calls):
        backend.infer(stacked[i % len(stacked)])
    return calls * batch / (time.perf_counter() - start)


def _paired(batched: list[float], single: list[float], mean_batch: float) -> Paired:
    ratio = statistics.median(b / s for b, s in zip(batched, single, strict=True))
    return Paired(statistics.median(batched), statistics.median(single), ratio, mean_batch)


def measure(
    backend: Backend,
    streams: int = 4,
    frames: int = 40,
    repeats: int = 5,
    log: Callable[[str], None] = print,
) -> dict[str, Paired]:
    """Paired batched vs one-at-a-time runs of ``streams`` synthetic sources (see the module docstring)."""
    if backend.meta.batch != 0:
        raise PemError(
            f"{backend.path} has a static batch of {backend.meta.batch}; "
            "export with `pem export --dynamic-batch`"
        )
    if 0 < backend.max_batch < streams:
        raise PemError(
            f"{backend.path} takes at most {backend.max_batch} frames per call; --streams {streams}"
        )
    segmenter = Segmenter.from_backend(backend)
    h, w = segmenter.input_size
    per_source = [[SyntheticScene(h, w, seed=s).frame(i) for i in range(16)] for s in range(streams)]
    images = [segmenter.letterbox.apply(f)[0].copy()[None] for frames in per_source for f in frames]
    streams_fps(segmenter, per_source, 4, streams)  # warm-up: sessions, allocations, threads
    bare_fps(backend, images, 4, streams)
    runs: dict[str, tuple[list[float], list[float]]] = {"pipeline": ([], []), "bare": ([], [])}
    batches = []
    for r in range(repeats):
        fps, mean = streams_fps(segmenter, per_source, frames, streams)
        runs["pipeline"][0].append(fps)
        batches.append(mean)
        runs["pipeline"][1].append(streams_fps(segmenter, per_source, frames, 1)[0])
        runs["bare"][0].append(bare_fps(backend, images, frames, streams))
        runs["bare"][1].append(bare_fps(backend, images, frames * streams, 1))
        log(
            f"  repeat {r + 1}: {streams} streams batched {runs['pipeline'][0][-1]:6.1f} FPS, one at a time "
            f"{runs['pipeline'][1][-1]:6.1f} FPS; bare batch {streams} {runs['bare'][0][-1]:6.1f} FPS, "
            f"batch 1 {runs['bare'][1][-1]:6.1f} FPS"
        )
    return {
        "pipeline": _paired(*runs["pipeline"], statistics.median(batches)),
        "bare": _paired(*runs["bare"], float(streams)),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/stream_batching.py", description=__doc__.splitlines()[0]
    )
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--onnx", type=Path, help="dynamic-batch deployable ONNX (pem export --dynamic-batch)")
    kind.add_argument(
        "--engine", type=Path, help="TensorRT engine with a batch profile (build-engine --batch)"
    )
    p.add_argument("--provider", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = one per core)")
    p.add_argument("--streams", type=int, default=4, help="sources (default 4)")
    p.add_argument("--frames", type=int, default=40, help="frames per source per timed run (default 40)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5)")
    return p


def _run(args: argparse.Namespace) -> int:
    if args.streams < 2 or args.frames < 1 or args.repeats < 1:
        raise PemError("--streams must be at least 2, --frames and --repeats at least 1")
    options = BackendOptions(provider=args.provider, threads=args.threads)
    backend = open_backend(engine=args.engine, onnx=args.onnx, options=options, log=print)
    meta = backend.meta
    print(
        f"{backend.name}; model {meta.name} {meta.input_height}x{meta.input_width}; {args.streams} synthetic "
        f"streams x {args.frames} frames, {args.repeats} repeats"
    )
    result = measure(backend, args.streams, args.frames, args.repeats)
    backend.close()
    for what, r in result.items():
        print(
            f"{what}: {args.streams} streams batched {r.batched_fps:.1f} FPS "
            f"(mean batch {r.mean_batch:.2f}) vs "
            f"one at a time {r.single_fps:.1f} FPS: {r.ratio:.2f}x (median of {args.repeats} paired repeats)"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("bench-multistream", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
