"""`python runtime/stream.py --camera 0`: live segmentation of a camera, video, RTSP stream or folder.

Examples:

    pem stream                                        # synthetic street scene, newest model under runs/
    pem stream --camera 0 --engine runs/x/m_semantic_512x1024.fp16.native.trt10.9.0.engine
    pem stream --source rtsp://cam.local/live --onnx m.onnx --headless --record out.mp4
    pem stream --source frames/ --save-masks preds/ --headless --metrics metrics.json

Keys in the window: q or Esc quits. Headless: Ctrl-C (or q + Enter on a terminal) stops; the recording
and metrics are finalised on every way out. Never imports torch.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from pem_rt.command import run_command
from pem_rt.errors import PemError
from pem_rt.files import atomic_write_text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pem stream",
        description="Live segmentation of a camera, video, RTSP stream or image folder with a PEM model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2] if __doc__ else None,
    )
    src = p.add_argument_group("source (default: the synthetic street scene)")
    which = src.add_mutually_exclusive_group()
    which.add_argument("--camera", type=int, metavar="N", help="camera index (/dev/videoN)")
    which.add_argument(
        "--source",
        metavar="SRC",
        help="video file, image folder or glob, rtsp:// or http:// URL, GStreamer pipeline, csi://N, "
        "or synthetic[:HxW] (height x width, default 720x1280)",
    )
    src.add_argument("--frames", type=int, metavar="N", help="stop after N processed frames")
    src.add_argument(
        "--realtime", action="store_true", help="pace the synthetic source at 30 FPS like a camera (live)"
    )
    src.add_argument(
        "--reconnect-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="keep reopening a lost camera or stream for S seconds (default 30)",
    )
    model = p.add_argument_group("model (default: the newest engine or ONNX under runs/)")
    kind = model.add_mutually_exclusive_group()
    kind.add_argument("--engine", type=Path, help="TensorRT / TensorRT-RTX engine (with its .json sidecar)")
    kind.add_argument("--onnx", type=Path, help="deployable ONNX graph (pem export), run by ONNX Runtime")
    model.add_argument(
        "--backend",
        choices=("auto", "tensorrt", "onnxruntime"),
        default="auto",
        help="auto: TensorRT for engines, ONNX Runtime where there is no GPU/TensorRT (default)",
    )
    model.add_argument(
        "--provider", choices=("auto", "cpu", "cuda"), default="auto", help="ONNX Runtime provider"
    )
    model.add_argument("--plugins", type=Path, help="plugin library for engines that do not embed it")
    model.add_argument("--no-cuda-graph", action="store_true", help="TensorRT: launch without CUDA graphs")
    model.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = one per core)")
    model.add_argument(
        "--resize",
        choices=("letterbox", "stretch", "none"),
        default="letterbox",
        help="fit frames to the model input: letterbox keeps the aspect ratio and pads (default), "
        "stretch scales both axes, none requires frames of the model's size",
    )
    out = p.add_argument_group("output")
    out.add_argument("--headless", action="store_true", help="no window")
    out.add_argument("--record", type=Path, metavar="OUT.mp4", help="write the overlay as a video")
    out.add_argument(
        "--save-masks", type=Path, metavar="DIR", help="one label PNG per frame (the evaluator's format)"
    )
    out.add_argument(
        "--metrics", type=Path, metavar="FILE.json", help="frames, dropped, FPS, latency percentiles"
    )
    out.add_argument("--alpha", type=float, default=0.5, help="opacity of the class colours, 0..1 (0.5)")
    out.add_argument("--no-hud", action="store_true", help="no HUD and legend on the overlay")
    out.add_argument("--verbose", action="store_true", help="keep OpenCV/FFmpeg's own log messages")
    return p


def _stdin_quit(stop: Any) -> None:
    """On a terminal, 'q' + Enter stops a headless run (EOF on stdin does too)."""

    def watch() -> None:
        for line in sys.stdin:
            if line.strip().lower() in ("q", "quit"):
                break
        else:
            return  # stdin closed without a q: keep running (e.g. nohup)
        stop("q entered")

    if sys.stdin is not None and sys.stdin.isatty():
        threading.Thread(target=watch, name="stdin-quit", daemon=True).start()


def _run(args: argparse.Namespace) -> int:
    from runtime.metrics import STAGES
    from runtime.pipeline import Outputs, Pipeline, window_unavailable
    from runtime.segmenter import Segmenter
    from runtime.sources import open_source, quiet_opencv

    if not 0.0 <= args.alpha <= 1.0:
        raise PemError(f"--alpha {args.alpha}: use a value from 0 (frame only) to 1 (colours only)")
    if args.frames is not None and args.frames < 1:
        raise PemError(f"--frames {args.frames}: must be at least 1")
    if args.reconnect_timeout < 0:
        raise PemError("--reconnect-timeout must be >= 0 seconds")
    quiet_opencv(args.verbose)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    source = open_source(args.source, args.camera, args.realtime, args.reconnect_timeout, log)
    model = args.engine or args.onnx
    segmenter = Segmenter(
        model,
        backend=args.backend,
        provider=args.provider,
        resize=args.resize,
        plugins=args.plugins,
        cuda_graph=not args.no_cuda_graph,
        threads=args.threads,
        log=log,
    )
    show = not args.headless
    if show:
        reason = window_unavailable()
        if reason:
            hint = "" if args.record else "; add --record out.mp4 to keep the result"
            log(f"{reason}: running headless (pass --headless to skip this check){hint}")
            show = False
    source.open()
    meta = segmenter.meta
    log(
        f"{source.description} -> PEM {meta.name} {meta.task} {meta.input_height}x{meta.input_width} "
        f"on {segmenter.name} ({args.resize}; {'live: newest frames kept' if source.live else 'every frame'})"
    )
    outputs = Outputs(
        show=show,
        record=args.record,
        save_masks=args.save_masks,
        alpha=args.alpha,
        hud=not args.no_hud,
        progress_every=0.0 if show else 5.0,
    )
    pipeline = Pipeline(segmenter, source, outputs, args.frames, log=log)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        pipeline.stop(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, on_signal)
    if not show:
        _stdin_quit(pipeline.stop)
    error: str | None = None
    try:
        metrics = pipeline.run()
    except PemError as e:
        error = str(e)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        segmenter.close()
        m = pipeline.metrics
        if args.metrics:
            info = {
                "source": source.description,
                "live": source.live,
                "model": str(segmenter.backend.path),
                "backend": segmenter.name,
                "input_size": [meta.input_height, meta.input_width],
                "resize": args.resize,
                "stopped_by": "error" if error else pipeline.state.reason,
                **({"error": error} if error else {}),
            }
            atomic_write_text(args.metrics, json.dumps(m.to_json(**info), indent=2) + "\n")
    e2e = metrics.stages["end_to_end"]
    log(
        f"{metrics.frames} frames, {metrics.fps:.1f} FPS, end-to-end latency p50/p90/p99 "
        f"{e2e.percentile(50):.1f}/{e2e.percentile(90):.1f}/{e2e.percentile(99):.1f} ms, "
        f"dropped {metrics.dropped}, reconnects {metrics.reconnects} (stopped: {pipeline.state.reason})"
    )
    stages = ", ".join(
        f"{s} {metrics.stages[s].percentile(50):.1f}"
        for s in STAGES
        if metrics.stages[s].count and s != "end_to_end"
    )
    log(f"p50 per stage (ms): {stages}")
    if pipeline.recorded:
        log(f"wrote {pipeline.recorded}")
    if args.save_masks:
        log(f"wrote {metrics.frames} label maps to {args.save_masks}/")
    if args.metrics:
        log(f"wrote {args.metrics}")
    if metrics.frames == 0 and pipeline.state.reason == "end of source":
        raise PemError(f"{source.description} delivered no frames (empty or unreadable)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("stream", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
