"""`python runtime/stream.py --camera 0`: live segmentation of a camera, video, RTSP stream or folder.

Examples:

    pem stream                                        # synthetic street scene, the model under runs/
    pem stream --camera 0 --engine runs/x/m_semantic_512x1024.fp16.native.trt10.9.0.engine
    pem stream --source rtsp://cam.local/live --onnx m.onnx --headless --record out.mp4
    pem stream --source frames/ --save-masks preds/ --headless --metrics metrics.json
    pem stream --camera 0 --camera 1 --source rtsp://cam3/live --onnx m_dynamic.onnx   # batched, tiled
    pem stream --sources cameras.txt --headless --record out_{i}.mp4 --metrics all.json
    pem stream --sources cameras.txt --triton grpc://gpu-server:8001/pem_cityscapes --headless
    pem stream --source rtsp://cam.local/live --headless --serve 0.0.0.0:8080 --metrics-port 9100
    pem stream --source rtsp://cam.local/live --headless --results - | my_program   # JSON line per frame

Keys in the window: q or Esc quits. Headless: Ctrl-C (or q + Enter on a terminal) stops; the recording
and metrics are finalised on every way out. Never imports torch.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from pem_rt.command import run_command
from pem_rt.errors import PemError
from pem_rt.files import atomic_write_text
from pem_rt.log import configure

DEFAULT_BATCH_TIMEOUT_MS = (
    10.0  # runtime.multistream.DEFAULT_BATCH_TIMEOUT (not imported: --help stays light)
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pem stream",
        description="Live segmentation of a camera, video, RTSP stream or image folder with a PEM model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2] if __doc__ else None,
    )
    src = p.add_argument_group(
        "sources (default: the synthetic street scene; repeat --camera/--source, or --sources, for several "
        "streams batched through one model)"
    )
    src.add_argument(
        "--camera",
        dest="inputs",
        action="append",
        type=_camera,
        metavar="N",
        help="camera index (/dev/videoN)",
    )
    src.add_argument(
        "--source",
        dest="inputs",
        action="append",
        type=lambda text: ("source", text),
        metavar="SRC",
        help="video file, image folder or glob, rtsp:// or http:// URL, GStreamer pipeline, csi://N, "
        "or synthetic[:HxW][@SEED] (height x width, default 720x1280; each seed another street)",
    )
    src.add_argument(
        "--sources",
        dest="inputs",
        action="append",
        type=lambda text: ("sources", text),
        metavar="FILE",
        help="a text file of sources, one per line as --source takes them (camera:N for a camera; "
        "blank lines and # comments skipped)",
    )
    src.add_argument("--frames", type=int, metavar="N", help="stop (each source) after N processed frames")
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
    model = p.add_argument_group("model (default: the reference graph under runs/, or its engine)")
    kind = model.add_mutually_exclusive_group()
    kind.add_argument("--engine", type=Path, help="TensorRT / TensorRT-RTX engine (with its .json sidecar)")
    kind.add_argument("--onnx", type=Path, help="deployable ONNX graph (pem export), run by ONNX Runtime")
    kind.add_argument(
        "--triton",
        metavar="grpc://HOST:PORT/MODEL",
        help="send the frames to a Triton Inference Server serving a `pem triton-repo` model",
    )
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
    multi = p.add_argument_group("several sources")
    multi.add_argument(
        "--batch-timeout",
        type=float,
        default=DEFAULT_BATCH_TIMEOUT_MS,
        metavar="MS",
        help="once a batch has its first frame, wait at most MS for the other sources "
        f"(default {DEFAULT_BATCH_TIMEOUT_MS:g}); a source that missed a batch is not waited for",
    )
    multi.add_argument(
        "--max-batch",
        type=int,
        metavar="N",
        help="at most N frames per inference call (default: every source, up to the model's limit; "
        "1 = one frame per call)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--headless", action="store_true", help="no window")
    out.add_argument(
        "--record",
        type=Path,
        metavar="OUT.mp4",
        help="write the overlay as a video; several sources: out_{i}.mp4 (one per source), a folder "
        "(source{i}.mp4 in it), or out.mp4 (the tiled preview)",
    )
    out.add_argument(
        "--record-codec",
        choices=("h264", "hevc", "mjpeg", "mp4v"),
        default="h264",
        help="codec of --record: h264 plays everywhere (default), hevc is smaller, mjpeg is cheapest to "
        "encode, mp4v is MPEG-4 Part 2",
    )
    out.add_argument(
        "--save-masks",
        type=Path,
        metavar="DIR",
        help="one label PNG per frame (the evaluator's format); several sources: DIR/source{i}/",
    )
    out.add_argument(
        "--metrics", type=Path, metavar="FILE.json", help="frames, dropped, FPS, latency percentiles"
    )
    out.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first image or video frame that cannot be decoded (default: skip it, count it "
        "in the metrics as lost, and say where at the end)",
    )
    out.add_argument(
        "--results",
        metavar="FILE|-",
        help="one JSON line per frame (time, source, frame, class shares, panoptic segments with area and "
        "box); - for stdout (messages then go to stderr)",
    )
    watch = p.add_argument_group("watching a headless run")
    watch.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="live view in a browser at http://HOST:PORT/ (MJPEG; every source side by side, legend, "
        "FPS/latency); 127.0.0.1 unless HOST is given (0.0.0.0: the whole network, no authentication)",
    )
    watch.add_argument(
        "--metrics-port",
        metavar="[HOST:]PORT",
        help="Prometheus metrics at http://HOST:PORT/metrics (per source: frames, dropped, reconnects, "
        "decode errors, FPS, per-stage latency histograms; batch sizes); 127.0.0.1 unless HOST is given",
    )
    watch.add_argument(
        "--linger",
        type=float,
        default=0.0,
        metavar="S",
        help="after the stream ends, keep --serve and --metrics-port up S seconds (SIGTERM/Ctrl-C ends)",
    )
    out.add_argument("--alpha", type=float, default=0.5, help="opacity of the class colours, 0..1 (0.5)")
    out.add_argument("--no-hud", action="store_true", help="no HUD and legend on the overlay")
    out.add_argument(
        "--verbose", action="store_true", help="every message of OpenCV/FFmpeg and the libraries, unfiltered"
    )
    return p


def _camera(text: str) -> tuple[str, str]:
    try:
        int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a camera index (0, 1, ...)") from None
    return "camera", text


def read_sources_file(path: Path) -> list[tuple[str, str]]:
    """``--sources FILE``: one source per line (``camera:N`` for a camera), # comments, blank lines."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise PemError(f"--sources {path}: cannot read it ({e.strerror}); one source per line") from None
    except UnicodeDecodeError as e:
        raise PemError(
            f"--sources {path}: not a text file (byte {e.start} is not UTF-8); one source per line"
        ) from None
    found = []
    for number, line in enumerate(lines, 1):
        text = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not text:
            continue
        if text.startswith("camera:"):
            index = text.split(":", 1)[1]
            if not index.strip().isdigit():
                raise PemError(f"--sources {path}: line {number} '{text}': use camera:N with N = 0, 1, ...")
            found.append(("camera", index.strip()))
        else:
            found.append(("source", text))
    if not found:
        raise PemError(f"--sources {path}: no sources in it (one per line, e.g. rtsp://cam1/live)")
    return found


def source_specs(inputs: list[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """The --camera/--source/--sources flags in order, sources files expanded."""
    specs: list[tuple[str, str]] = []
    for kind, value in inputs or []:
        specs += read_sources_file(Path(value)) if kind == "sources" else [(kind, value)]
    return specs


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


def check_outputs(metrics: Path | None, masks: Path | None, record: Path | None) -> None:
    """Every output path is checked before a source opens or a model loads."""
    from pem_rt.paths import check_output_dir, check_output_file

    check_output_file(metrics, "--metrics", "metrics.json")
    check_output_dir(masks, "--save-masks")
    check_output_file(record, "--record", "out.mp4")


def _run(args: argparse.Namespace) -> int:
    from runtime.segmenter import Segmenter
    from runtime.sources import open_source, quiet_opencv

    if not 0.0 <= args.alpha <= 1.0:
        raise PemError(f"--alpha {args.alpha}: use a value from 0 (frame only) to 1 (colours only)")
    if args.frames is not None and args.frames < 1:
        raise PemError(f"--frames {args.frames}: must be at least 1")
    if args.reconnect_timeout < 0:
        raise PemError("--reconnect-timeout must be >= 0 seconds")
    if args.batch_timeout < 0:
        raise PemError(f"--batch-timeout {args.batch_timeout:g}: must be >= 0 ms")
    if args.max_batch is not None and args.max_batch < 1:
        raise PemError(f"--max-batch {args.max_batch}: must be at least 1")
    quiet_opencv(args.verbose)
    field = run_output_options(args)
    log = configure(args.verbose, stderr=field.results == "-").info  # the project logger (pem_rt/log.py)
    specs = source_specs(args.inputs)
    check_outputs(args.metrics, args.save_masks, args.record if len(specs) <= 1 else None)
    if args.triton is not None:
        from runtime.backends.triton_backend import parse_address

        parse_address(args.triton)  # a malformed address is one line before any source opens
    sources = []
    for i, (kind, value) in enumerate(specs or [("source", "synthetic")]):
        camera = int(value) if kind == "camera" else None
        spec = value if kind == "source" else None
        sources.append(open_source(spec, camera, args.realtime, args.reconnect_timeout, log, seed=i))
        sources[-1].strict = args.strict
    model = args.triton or args.engine or args.onnx
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
        from runtime.output_stage import window_unavailable

        reason = window_unavailable()
        if reason:
            hint = "" if args.record else "; add --record out.mp4 to keep the result"
            log(f"{reason}: running headless (pass --headless to skip this check){hint}")
            show = False
    note = batch_note(segmenter.backend.path, segmenter.meta.batch, segmenter.max_batch, len(sources))
    if note:
        log(note)
    from runtime.run_outputs import open_run_outputs

    names = [source.description for source in sources]
    with open_run_outputs(field, segmenter.meta, names, log) as watched:
        run = stream_run_from_args(args, show, watched.sinks)
        if len(sources) == 1:
            return _run_single(run, sources[0], segmenter, log, watched)
        return _run_multi(run, sources, segmenter, log, watched)


def run_output_options(args: argparse.Namespace) -> Any:
    """--serve, --metrics-port, --results, --linger as runtime.run_outputs.RunOutputOptions."""
    from runtime.live_view import parse_serve
    from runtime.run_outputs import RunOutputOptions

    if args.linger < 0:
        raise PemError(f"--linger {args.linger:g}: must be >= 0 seconds")
    return RunOutputOptions(
        serve=parse_serve(args.serve) if args.serve is not None else None,
        metrics_at=parse_serve(args.metrics_port, "--metrics-port")
        if args.metrics_port is not None
        else None,
        results=args.results,
        linger=args.linger,
    )


def batch_note(model: Path | str, static: int, limit: int, count: int) -> str | None:
    """One line on how a model's batch meets ``count`` sources, when it is not simply one call per batch."""
    if count == 1 and static > 1:
        return (
            f"note: {model} has a static batch of {static}: each frame is padded to {static}; for one source "
            "export with `pem export --batch 1` (or --dynamic-batch)"
        )
    if count > 1 and static == 1:
        return (
            f"note: {model} has a static batch of 1, so the {count} sources run one frame per inference "
            f"call; to batch them export with `pem export --dynamic-batch` (engines: `pem build-engine "
            f"--batch 1,{count},{count}`)"
        )
    if count > 1 and static > 1 and static != count:
        return f"note: {model} has a static batch of {static}: calls of {static} frames, padded when fewer"
    if count > 1 and static == 0 and 0 < limit < count:
        return (
            f"note: {model} takes at most {limit} frames per call (its optimisation profile): the {count} "
            f"sources run in calls of up to {limit}; rebuild with `pem build-engine --batch "
            f"1,{count},{count}`"
        )
    return None


@dataclass(frozen=True)
class StreamRun:
    """What a run does with its frames, from the command's flags (``batch_timeout`` in seconds)."""

    outputs: Any  # runtime.pipeline.Outputs (imported lazily: --help stays light)
    frames: int | None
    metrics: Path | None
    resize: str
    batch_timeout: float
    max_batch: int | None


def stream_run_from_args(args: argparse.Namespace, show: bool, sinks: tuple[Any, ...] = ()) -> StreamRun:
    from runtime.output_stage import Outputs

    outputs = Outputs(
        show=show,
        record=args.record,
        save_masks=args.save_masks,
        alpha=args.alpha,
        hud=not args.no_hud,
        progress_every=0.0 if show else 5.0,
        record_codec=args.record_codec,
        sinks=sinks,
    )
    return StreamRun(
        outputs, args.frames, args.metrics, args.resize, args.batch_timeout / 1e3, args.max_batch
    )


@contextmanager
def _stoppable(stop: Callable[[str], None], show: bool) -> Iterator[None]:
    """SIGTERM (and q + Enter when headless) stop the run gracefully while the block runs."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, on_signal)
    if not show:
        _stdin_quit(stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_info(run: StreamRun, segmenter: Any, reason: str, error: str | None) -> dict[str, Any]:
    """What --metrics says about the model and how the run ended."""
    meta = segmenter.meta
    return {
        "model": str(segmenter.backend.path),
        "backend": segmenter.name,
        "input_size": [meta.input_height, meta.input_width],
        "resize": run.resize,
        "stopped_by": "error" if error else reason,
        **({"error": error} if error else {}),
    }


def _execute(
    run: StreamRun,
    go: Callable[[], Any],
    stop: Callable[[str], None],
    segmenter: Any,
    metrics_json: Callable[[str | None], dict[str, Any]],
) -> Any:
    """Run ``go`` stoppable by signals; on every way out close the model and write --metrics."""
    error: str | None = None
    try:
        with _stoppable(stop, run.outputs.show):
            return go()
    except PemError as e:
        error = str(e)
        raise
    finally:
        segmenter.close()
        if run.metrics:
            atomic_write_text(run.metrics, json.dumps(metrics_json(error), indent=2) + "\n")


def _wrote(run: StreamRun, recorded: Sequence[Path], masks: str, log: Any) -> None:
    for path in recorded:
        log(f"wrote {path}")
    if run.outputs.save_masks:
        log(f"wrote {masks}")
    if run.metrics:
        log(f"wrote {run.metrics}")


def _run_single(run: StreamRun, source: Any, segmenter: Any, log: Any, watched: Any) -> int:
    from runtime.metrics import STAGES
    from runtime.pipeline import Pipeline
    from runtime.telemetry import Watched

    source.open()
    meta = segmenter.meta
    log(
        f"{source.description} -> PEM {meta.name} {meta.task} {meta.input_height}x{meta.input_width} "
        f"on {segmenter.name} ({run.resize}; {'live: newest frames kept' if source.live else 'every frame'})"
    )
    pipeline = Pipeline(segmenter, source, run.outputs, run.frames, log=log)
    watched.watch([Watched(0, source.description, pipeline.metrics, _read_errors(source))])

    def metrics_json(error: str | None) -> dict[str, Any]:
        info = {"source": source.description, "live": source.live}
        return pipeline.metrics.to_json(**info, **_run_info(run, segmenter, pipeline.state.reason, error))

    metrics = _execute(run, pipeline.run, pipeline.stop, segmenter, metrics_json)
    e2e = metrics.stages["end_to_end"]
    log(
        f"{metrics.frames} frames, {metrics.fps:.1f} FPS, end-to-end latency p50/p90/p99 "
        f"{e2e.percentile(50):.1f}/{e2e.percentile(90):.1f}/{e2e.percentile(99):.1f} ms, "
        f"dropped {metrics.dropped}, reconnects {metrics.reconnects}, lost {source.lost} "
        f"(stopped: {pipeline.state.reason})"
    )
    if source.lost:
        plural = "s were" if source.lost > 1 else " was"
        log(
            f"warning: {source.description}: {source.lost} frame{plural} not decodable and skipped "
            f"({'; '.join(source.damage)})"
        )
    stages = ", ".join(
        f"{s} {metrics.stages[s].percentile(50):.1f}"
        for s in STAGES
        if metrics.stages[s].count and s != "end_to_end"
    )
    log(f"p50 per stage (ms): {stages}")
    recorded = [pipeline.recorded] if pipeline.recorded else []
    _wrote(run, recorded, f"{metrics.frames} label maps to {run.outputs.save_masks}/", log)
    if metrics.frames == 0 and pipeline.state.reason == "end of source":
        raise PemError(f"{source.description} delivered no frames (empty or unreadable)")
    return 0


def _run_multi(run: StreamRun, sources: list[Any], segmenter: Any, log: Any, watched: Any) -> int:
    from runtime.multistream import MultiStream
    from runtime.telemetry import Watched

    meta = segmenter.meta
    multi = MultiStream(
        segmenter,
        sources,
        run.outputs,
        run.frames,
        batch_timeout=run.batch_timeout,
        max_batch=run.max_batch,
        log=log,
    )
    log(
        f"{len(sources)} sources -> PEM {meta.name} {meta.task} {meta.input_height}x{meta.input_width} on "
        f"{segmenter.name} ({run.resize}; batched, up to "
        f"{min(v for v in (segmenter.max_batch, run.max_batch, len(sources)) if v)} frames per call)"
    )
    for lane in multi.lanes:
        kind = "live: newest frames kept" if lane.source.live else "every frame"
        log(f"  source {lane.index}: {lane.source.description} ({kind})")
    lanes = [Watched(lane.index, lane.source.description, lane.metrics, _read_errors(lane.source))
             for lane in multi.lanes]  # fmt: skip
    watched.watch(lanes, multi.metrics)

    def metrics_json(error: str | None) -> dict[str, Any]:
        info = [
            {
                "source": lane.source.description,
                "live": lane.source.live,
                "stopped_by": lane.ended or multi.state.reason,
                **({"error": str(lane.error)} if lane.error is not None else {}),
            }
            for lane in multi.lanes
        ]
        result: dict[str, Any] = multi.metrics.to_json(
            info, **_run_info(run, segmenter, multi.state.reason, error)
        )
        return result

    metrics = _execute(run, multi.run, multi.stop, segmenter, metrics_json)
    log(
        f"{len(sources)} sources, {metrics.frames} frames, {metrics.fps:.1f} FPS in all, {metrics.batches} "
        f"batches of {metrics.mean_batch:.2f} frames on average (stopped: {multi.state.reason})"
    )
    for lane in multi.lanes:
        m = lane.metrics
        e2e = m.stages["end_to_end"]
        log(
            f"  source {lane.index}: {m.frames} frames, {m.fps:.1f} FPS, end-to-end p50/p99 "
            f"{e2e.percentile(50):.1f}/{e2e.percentile(99):.1f} ms, dropped {m.dropped}, reconnects "
            f"{m.reconnects} ({lane.ended or multi.state.reason})"
        )
    _wrote(run, multi.recorded, f"{metrics.frames} label maps to {run.outputs.save_masks}/source*/", log)
    empty = [lane for lane in multi.lanes if lane.metrics.frames == 0 and lane.ended == "end of source"]
    if empty:
        names = ", ".join(lane.source.description for lane in empty)
        raise PemError(f"{names}: delivered no frames (empty or unreadable)")
    return 0


def _read_errors(source: Any) -> Callable[[], int]:
    return lambda: int(source.read_errors)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("stream", build_parser(), _run, argv, stdout_is_data=lambda a: a.results == "-")


if __name__ == "__main__":
    sys.exit(main())
