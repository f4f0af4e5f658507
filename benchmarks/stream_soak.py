"""`python benchmarks/stream_soak.py --minutes 10`: a long stream run shows memory does not grow.

The synthetic street scene at ``--size`` goes through the whole pipeline as `pem stream` runs it, with
the overlay (colours, outlines, legend, HUD) rendered for every frame; ``--record mp4`` also encodes it
to a temporary file (deleted at the end). The process's resident
memory (RSS, from /proc/self/statm) is sampled every ``--sample-every`` seconds; after a warm-up (the first
tenth of the run, at least 30 s) a least-squares line is fitted to RSS over time and its slope printed
in MB per minute. PASSED when the slope stays under ``--max-slope`` (default 0.2 MB/min, i.e. < 2 MB over
the 10 minutes). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
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
from runtime.pipeline import Outputs, Pipeline
from runtime.segmenter import Segmenter
from runtime.sources import MIN_FRAME, SyntheticSource


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; ru_maxrss elsewhere is only a peak)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        raise PemError("the soak benchmark reads /proc/self/statm: run it on Linux") from None
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class Sampler(threading.Thread):
    def __init__(self, pipeline: Pipeline, every: float) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pipeline, self.every = pipeline, every
        self.samples: list[tuple[float, float, int]] = []  # (seconds, RSS MB, frames)
        self.done = threading.Event()

    def run(self) -> None:
        start = time.perf_counter()
        while not self.done.wait(self.every):
            self.samples.append((time.perf_counter() - start, rss_mb(), self.pipeline.metrics.frames))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python benchmarks/stream_soak.py", description=__doc__.splitlines()[0])
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--onnx", type=Path, help="deployable ONNX (default: the reference graph under runs/)")
    kind.add_argument("--engine", type=Path, help="TensorRT engine")
    p.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    p.add_argument("--size", default="360x640", help="synthetic frame size HxW (default 360x640)")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    p.add_argument("--max-slope", type=float, default=0.2, help="MB/min allowed after warm-up (default 0.2)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = one per core)")
    p.add_argument(
        "--record",
        choices=("none", "mp4", "avi"),
        default="none",
        help="also record the overlay to a temporary file of this kind (default none: MP4 and AVI keep a "
        "per-frame index in memory until the file is closed, by design of the formats)",
    )
    return p


def _run(args: argparse.Namespace) -> int:
    segmenter = Segmenter(args.engine or args.onnx, threads=args.threads)
    source = SyntheticSource(parse_size(args.size, "--size", MIN_FRAME))
    duration = args.minutes * 60.0
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / f"soak.{args.record}" if args.record != "none" else None
        outputs = Outputs(show=False, record=record, progress_every=0.0, render=True)
        pipeline = Pipeline(segmenter, source, outputs, log=print)
        sampler = Sampler(pipeline, args.sample_every)
        timer = threading.Timer(duration, pipeline.stop, args=("soak time reached",))
        what = f"overlay recorded to {args.record.upper()}" if record else "overlay rendered, not recorded"
        print(f"soak: {source.description} -> {segmenter.name}, {what}, {args.minutes:g} min")
        start_rss = rss_mb()
        sampler.start()
        timer.start()
        try:
            metrics = pipeline.run()
        finally:
            timer.cancel()
            sampler.done.set()
            sampler.join()
    samples = sampler.samples
    warm = max(30.0, duration / 10)
    steady = [(t, r) for t, r, _ in samples if t >= warm]
    if len(steady) < 3:
        raise PemError(f"too few samples after the {warm:.0f} s warm-up: run longer or sample more often")
    minute = max(1, round(60.0 / args.sample_every))
    print(f"{'t (s)':>7} {'RSS (MB)':>9} {'frames':>8}")
    for sec, mb, frames in samples[::minute] + ([samples[-1]] if (len(samples) - 1) % minute else []):
        print(f"{sec:7.0f} {mb:9.1f} {frames:8d}")
    t = np.array([s[0] for s in steady]) / 60.0
    r = np.array([s[1] for s in steady])
    slope = float(np.polyfit(t, r, 1)[0])
    print(
        f"{metrics.frames} frames in {samples[-1][0] / 60:.1f} min ({metrics.fps:.1f} FPS), dropped "
        f"{metrics.dropped}; RSS {start_rss:.1f} MB at start, {r[0]:.1f} MB after warm-up, {r[-1]:.1f} MB "
        f"at the end (min {r.min():.1f}, max {r.max():.1f})"
    )
    print(f"RSS slope after warm-up: {slope:+.3f} MB/min (limit {args.max_slope} MB/min)")
    segmenter.close()
    return 0 if slope < args.max_slope else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("bench-soak", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
