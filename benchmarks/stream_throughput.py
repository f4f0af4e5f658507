"""`python benchmarks/stream_throughput.py`: stream pipeline throughput vs the bare backend, as a ratio.

Both run the same backend object on the same frames (synthetic street scenes at ``--frame-size``, by
default the model's input size). The bare loop calls ``backend.infer`` on frames already fitted to the
model (letterboxing done beforehand, outside the timing); the pipeline is the real one `pem stream`
runs, headless: capture thread, queues, letterbox, inference thread, post-processing, output stage
(plus overlay + MP4 recording with ``--record``). Each repeat times both back to back, and the median of
the per-repeat ratios is reported, so slow drifts in machine load (shared CI boxes) cancel out.
Target: the pipeline keeps >= 0.95x the bare backend's throughput. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pem_rt.command import run_command
from pem_rt.errors import PemError
from pem_rt.sizes import parse_size
from pem_rt.synthetic import SyntheticScene
from runtime.backends import Backend, BackendOptions, open_backend
from runtime.pipeline import Outputs, Pipeline
from runtime.segmenter import Segmenter
from runtime.sources import MIN_FRAME, Source

TARGET = 0.95


class FrameListSource(Source):
    """The benchmark's frames, cycled up to ``count``, delivered as a file would (every frame)."""

    def __init__(self, frames: list[np.ndarray], count: int) -> None:
        self.frames, self.count, self.i = frames, count, 0
        self.description = f"{count} benchmark frames"

    def read(self, stop: threading.Event) -> np.ndarray | None:
        if self.i >= self.count:
            return None
        self.i += 1
        return self.frames[(self.i - 1) % len(self.frames)]


def bare(backend: Backend, images: list[np.ndarray], count: int) -> float:
    """Frames per second of ``backend.infer`` alone."""
    start = time.perf_counter()
    for i in range(count):
        backend.infer(images[i % len(images)])
    return count / (time.perf_counter() - start)


def pipeline(segmenter: Segmenter, frames: list[np.ndarray], count: int, record: Path | None) -> float:
    """Frames per second of the whole stream pipeline, first frame read to last frame out."""
    outputs = Outputs(show=False, record=record, progress_every=0.0)
    run = Pipeline(segmenter, FrameListSource(frames, count), outputs, max_frames=count, log=lambda m: None)
    start = time.perf_counter()
    metrics = run.run()
    elapsed = time.perf_counter() - start
    if metrics.frames != count:
        raise PemError(f"the pipeline processed {metrics.frames} of {count} frames")
    return count / elapsed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/stream_throughput.py", description=__doc__.splitlines()[0]
    )
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--onnx", type=Path, help="deployable ONNX (default: the reference graph under runs/)")
    kind.add_argument("--engine", type=Path, help="TensorRT engine")
    p.add_argument("--provider", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = one per core)")
    p.add_argument("--frames", type=int, default=150, help="frames per timed run (default 150)")
    p.add_argument("--repeats", type=int, default=11, help="timed runs of each (default 11)")
    p.add_argument("--frame-size", help="HxW of the source frames (default: the model's input size)")
    p.add_argument(
        "--record", action="store_true", help="also render the overlay and record it (to a temporary MP4)"
    )
    return p


def _run(args: argparse.Namespace) -> int:
    options = BackendOptions(provider=args.provider, threads=args.threads)
    backend = open_backend(engine=args.engine, onnx=args.onnx, options=options, log=print)
    segmenter = Segmenter.from_backend(backend)
    meta = backend.meta
    size = parse_size(args.frame_size, "--frame-size", MIN_FRAME) if args.frame_size else segmenter.input_size
    scene = SyntheticScene(*size)
    frames = [scene.frame(i) for i in range(min(64, args.frames))]
    images = [segmenter.letterbox.apply(f)[0].copy()[None] for f in frames]
    print(
        f"{backend.name}; model {meta.name} {meta.input_height}x{meta.input_width}; "
        f"frames {size[0]}x{size[1]}; {args.frames} frames x {args.repeats} repeats"
        + ("; overlay + recording" if args.record else "")
    )
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "bench.mp4" if args.record else None
        warm = min(20, args.frames)
        bare(backend, images, warm)
        pipeline(segmenter, frames, warm, record)
        bare_fps, pipe_fps = [], []
        for r in range(args.repeats):
            bare_fps.append(bare(backend, images, args.frames))
            pipe_fps.append(pipeline(segmenter, frames, args.frames, record))
            print(f"  repeat {r + 1}: bare {bare_fps[-1]:7.1f} FPS   pipeline {pipe_fps[-1]:7.1f} FPS")
    b, s = statistics.median(bare_fps), statistics.median(pipe_fps)
    ratio = statistics.median(p / q for p, q in zip(pipe_fps, bare_fps, strict=True))
    print(
        f"bare backend {b:.1f} FPS, pipeline {s:.1f} FPS (medians); pipeline/bare {ratio:.3f}x "
        f"(median of {len(bare_fps)} paired repeats; target >= {TARGET}x)"
    )
    backend.close()
    return 0 if ratio >= TARGET else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("bench-throughput", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
