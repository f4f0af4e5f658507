"""Several sources through one model, batched: one capture thread per source, one batcher, one output stage.

    capture 0 --[queue]--+
    capture 1 --[queue]--+--> batcher (inference thread) --[queue 2]--> output stage (calling thread)
    capture k --[queue]--+    one frame of every source that has       per source: overlay, recording,
                              one -> one inference call                masks, metrics; the tiled preview

Each batch takes the newest frame of every live source (older ones are dropped and counted, as in the
single-stream pipeline) and the next frame of every file source (every frame is processed). Once the
first frame of a batch is there, the batcher waits at most ``batch_timeout`` seconds for the other
sources, and does not wait at all for a source that missed the previous batch until it delivers again:
a source that stalls (a camera that hangs, a stream that reconnects) costs the others one timeout, never
more. A source that ends (end of file, ``max_frames``, or an error such as a stream that did not come
back) is reported in one line and the others go on; the run ends when every source has ended, or on
``stop()`` (Ctrl-C, SIGTERM, q, a closed window). Errors of sources are raised at the end as one
PemError naming them; errors of the model stop everything at once.

A dynamic-batch model takes the whole batch in one call (``max_batch`` caps it, e.g. an engine's
optimisation profile); a static-batch model runs calls of exactly its batch, padded
(:meth:`runtime.segmenter.Segmenter.run_batch`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from pem_rt.errors import PemError
from runtime.capture import BoundedQueue, CaptureThread, Frame
from runtime.masks import MaskWriter
from runtime.metrics import LatencyHistogram, RateMeter, StreamMetrics
from runtime.output_stage import (
    WINDOW,
    Every,
    Outputs,
    RunState,
    drain,
    finish_frame,
    guarded,
    poll_window,
    update_hud,
)
from runtime.overlay import HudStats, Overlay
from runtime.recorder import FOURCC, Recorder
from runtime.sinks import to_sinks, wants_overlay
from runtime.sources import Source
from runtime.tiles import Tiles

if TYPE_CHECKING:
    from runtime.segmenter import (  # types only: segmenter imports the stream loop (Segmenter.stream)
        Result,
        Segmenter,
    )

Log = Callable[[str], None]
DEFAULT_BATCH_TIMEOUT = 0.010  # seconds the batcher waits for the other sources once a frame is there
QUEUE_SIZE = 2  # frames buffered per live source (files buffer 4x, refilled in halves)


def record_targets(record: Path | None, count: int) -> tuple[list[Path] | None, Path | None]:
    """``--record`` with several sources -> (one video per source, or the tiled preview as one video).

    ``out_{i}.mp4``: one video per source (``{i}`` = 0, 1, ...); ``out.mp4`` (a video suffix, no ``{i}``):
    the tiled preview; anything else is a folder that gets ``source{i}.mp4`` for each source.
    """
    if record is None:
        return None, None
    text = str(record)
    if "{i}" in text:
        return [Path(text.replace("{i}", str(i))) for i in range(count)], None
    if record.suffix.lower() in FOURCC:
        return None, record
    if record.exists() and not record.is_dir():
        raise PemError(f"--record {record}: not a folder; pass a folder, out_{{i}}.mp4 or out.mp4")
    return [record / f"source{i}.mp4" for i in range(count)], None


@dataclass
class Lane:
    """One source's state in a multi-stream run (its queue, capture thread, outputs and metrics)."""

    index: int
    source: Source
    queue: BoundedQueue[Frame]
    stop: threading.Event
    metrics: StreamMetrics = field(default_factory=StreamMetrics)
    capture: CaptureThread | None = None
    recorder: Recorder | None = None
    masks: MaskWriter | None = None
    rate: RateMeter = field(default_factory=RateMeter)
    hud: HudStats = field(default_factory=HudStats)
    taken: int = 0  # frames the batcher took
    late: bool = False  # missed the previous batch: not waited for until it delivers again
    ended: str = ""  # why it ended ("" while it runs)
    error: BaseException | None = None
    shown: np.ndarray | None = None  # the newest overlay (tiled preview)

    @property
    def name(self) -> str:
        return f"source {self.index} ({self.source.description})"


@dataclass
class MultiMetrics:
    """Per-source :class:`StreamMetrics` plus the batches: how many, their sizes, their inference time."""

    sources: list[StreamMetrics]
    batches: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)
    batch_ms: LatencyHistogram = field(default_factory=LatencyHistogram)  # inference + post-processing
    started: float = field(default_factory=time.perf_counter)

    @property
    def frames(self) -> int:
        return sum(m.frames for m in self.sources)

    @property
    def dropped(self) -> int:
        return sum(m.dropped for m in self.sources)

    @property
    def fps(self) -> float:
        """All sources' frames per second, from the first output of any source to the last."""
        firsts = [m.first_output for m in self.sources if m.first_output is not None]
        lasts = [m.last_output for m in self.sources if m.last_output is not None]
        if not firsts or self.frames < 2:
            return 0.0
        span = max(lasts) - min(firsts)
        return (self.frames - 1) / span if span > 0 else 0.0

    @property
    def mean_batch(self) -> float:
        return sum(k * n for k, n in self.batch_sizes.items()) / self.batches if self.batches else 0.0

    def to_json(self, sources: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            **extra,
            "frames": self.frames,
            "fps": round(self.fps, 3),
            "dropped": self.dropped,
            "wall_s": round(time.perf_counter() - self.started, 3),
            "batches": self.batches,
            "mean_batch": round(self.mean_batch, 3),
            "batch_sizes": {str(k): n for k, n in sorted(self.batch_sizes.items())},
            "batch_ms": self.batch_ms.summary(),
            "sources": [{**info, **m.to_json()} for info, m in zip(sources, self.sources, strict=True)],
        }


Batch = list[tuple[Lane, Frame, "Result"]]


def resized(image: np.ndarray, result: Result, size: tuple[int, int]) -> tuple[np.ndarray, Result]:
    """A frame and its result scaled to ``size`` (h, w): area/linear for the frame, nearest for the maps."""
    if image.shape[:2] == size:
        return image, result
    h, w = size
    interp = cv2.INTER_AREA if h < image.shape[0] else cv2.INTER_LINEAR
    frame = cv2.resize(image, (w, h), interpolation=interp)
    labels = cv2.resize(result.labels, (w, h), interpolation=cv2.INTER_NEAREST)
    panoptic = None
    if result.panoptic is not None:
        panoptic = cv2.resize(result.panoptic, (w, h), interpolation=cv2.INTER_NEAREST)
    return frame, Result(labels, panoptic, result.segments, result.timings)


class Batcher(threading.Thread):
    """Forms batches from the lanes' queues, runs them through the model, hands them to ``results``."""

    def __init__(self, run: MultiStream, results: BoundedQueue[Batch]) -> None:
        super().__init__(name="batcher", daemon=True)
        self.run_, self.results = run, results
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        ms = self.run_
        try:
            while not ms.state.stop.is_set():
                taken = self.collect()
                if taken is None:
                    break  # every source has ended
                if not taken:
                    continue
                prepared = []
                for _, frame in taken:
                    prepared.append(frame.prepared or ms.segmenter.prepare(frame.image))
                now = time.perf_counter()
                for (lane, frame), p in zip(taken, prepared, strict=True):
                    waited = now - frame.captured - (p.ms / 1e3 if frame.prepared else 0.0)
                    lane.metrics.add("queue", waited * 1e3)
                results = ms.segmenter.run_batch(prepared, ms.max_batch)
                ms.metrics.batches += 1
                ms.metrics.batch_sizes[len(taken)] += 1
                ms.metrics.batch_ms.add((time.perf_counter() - now) * 1e3)
                batch: Batch = []
                for (lane, frame), result in zip(taken, results, strict=True):
                    for stage, ms_ in result.timings.items():
                        lane.metrics.add(stage, ms_)
                    batch.append((lane, frame, result))
                self.results.put(batch, drop_oldest=False, stop=ms.state.stop)
        except BaseException as e:
            self.error = e
        finally:
            self.results.close()
            self.finished.set()

    def collect(self) -> list[tuple[Lane, Frame]] | None:
        """One frame of every lane that has one (waiting as the module docstring says); None when every
        lane has ended; [] when stopped or nothing arrived within 0.1 s."""
        ms = self.run_
        deadline: float | None = None
        with ms.cond:
            while True:
                if ms.state.stop.is_set():
                    return []
                active = [lane for lane in ms.lanes if not lane.ended]
                for lane in active:
                    if lane.queue.ended:
                        ms.end_lane(lane)
                active = [lane for lane in active if not lane.ended]
                if not active:
                    return None
                ready = [lane for lane in active if len(lane.queue)]
                awaited = [lane for lane in active if not lane.late and not len(lane.queue)]
                now = time.perf_counter()
                if ready and (not awaited or (deadline is not None and now >= deadline)):
                    break
                if ready and deadline is None:
                    deadline = now + ms.batch_timeout
                wait = 0.1 if deadline is None else max(0.0, deadline - now)
                if not ms.cond.wait(wait) and deadline is None:
                    return []
            taken: list[tuple[Lane, Frame]] = []
            for lane in active:
                if lane not in ready:
                    lane.late = True
                    continue
                lane.late = False
                if lane.source.live:
                    newest = lane.queue.take_newest()
                    assert newest is not None
                    frame, skipped = newest
                    lane.metrics.dropped += skipped
                else:
                    oldest = lane.queue.take_oldest()
                    assert oldest is not None
                    frame = oldest
                taken.append((lane, frame))
                lane.taken += 1
                if ms.max_frames is not None and lane.taken >= ms.max_frames:
                    lane.stop.set()  # its capture thread ends; frames still queued are not taken
                    ms.end_lane(lane, f"{ms.max_frames} frames done")
        return taken


class MultiStream:
    """Args:
    segmenter: the model (a dynamic-batch export batches; a static one runs its batch, padded).
    sources: unopened or opened :class:`Source` s (opened here if needed, closed at the end).
    outputs: as for :class:`runtime.pipeline.Pipeline`, per source: ``record`` is a pattern with ``{i}``,
        a folder (``source{i}.mp4`` each) or one video file (the tiled preview); ``save_masks`` gets a
        ``source{i}/`` folder per source; ``show`` shows the tiled preview.
    max_frames: stop each source after this many processed frames (None = until it ends).
    batch_timeout: seconds to wait for the other sources once a batch has its first frame.
    max_batch: frames per inference call at most (None = the model's limit; 1 = one frame per call).
    join_timeout: seconds to wait at the end for capture threads blocked in a read.
    log: where notices and progress lines go.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        sources: Sequence[Source],
        outputs: Outputs | None = None,
        max_frames: int | None = None,
        batch_timeout: float = DEFAULT_BATCH_TIMEOUT,
        max_batch: int | None = None,
        join_timeout: float = 10.0,
        log: Log = print,
    ) -> None:
        if not sources:
            raise PemError("no sources: pass at least one --source or --camera")
        if batch_timeout < 0:
            raise PemError(f"--batch-timeout {batch_timeout * 1e3:g}: must be >= 0 ms")
        if max_batch is not None and max_batch < 1:
            raise PemError(f"--max-batch {max_batch}: must be at least 1")
        self.segmenter = segmenter
        self.outputs = outputs or Outputs()
        self.max_frames = max_frames
        self.batch_timeout = batch_timeout
        self.max_batch = max_batch
        self.join_timeout = join_timeout
        self.log = log
        self.state = RunState()
        self.cond = threading.Condition()
        self.lanes: list[Lane] = []
        for i, source in enumerate(sources):
            if source.live:
                queue: BoundedQueue[Frame] = BoundedQueue(QUEUE_SIZE, cond=self.cond)
            else:
                queue = BoundedQueue(4 * QUEUE_SIZE, refill_at=2 * QUEUE_SIZE, cond=self.cond)
            lane = Lane(i, source, queue, threading.Event())
            lane.hud.backend = segmenter.name
            self.lanes.append(lane)
        self.metrics = MultiMetrics([lane.metrics for lane in self.lanes])
        self.overlay = Overlay(segmenter.meta, self.outputs.alpha, self.outputs.hud)
        self.tiles = Tiles(len(self.lanes))
        self.recorded: list[Path] = []
        self._preview: Recorder | None = None
        self._every = Every(self.outputs.progress_every)

    def stop(self, reason: str = "stopped") -> None:
        """Ask the run to end (thread-safe; for signal handlers and other threads)."""
        self.state.request_stop(reason)
        for lane in self.lanes:
            lane.stop.set()
        with self.cond:
            self.cond.notify_all()

    def end_lane(self, lane: Lane, reason: str = "") -> None:
        """Mark ``lane`` ended (``reason``, else its capture thread's error or the end of the source) and
        say so in one line."""
        capture = lane.capture
        lane.error = capture.error if capture is not None and not reason else None
        lane.ended = reason or ("error" if lane.error is not None else "end of source")
        if self.state.stop.is_set():
            return
        left = sum(1 for other in self.lanes if not other.ended)
        if lane.error is not None:
            why = f"stopped after {lane.taken} frames: {lane.error}"
        else:
            why = lane.ended if reason else f"{lane.ended} after {lane.taken} frames"
        rest = f"; {left} source{'s' if left != 1 else ''} go{'es' if left == 1 else ''} on" if left else ""
        self.log(f"{lane.name}: {why}{rest}")

    def run(self) -> MultiMetrics:
        """Process every source; raises a PemError naming failed sources, or the first stage error."""
        results: BoundedQueue[Batch] = BoundedQueue(2)
        batcher = Batcher(self, results)

        def body() -> None:
            self._open()
            batcher.start()
            drain(results, self._handle, lambda: self._idle(batcher), self._progress, self._every)
            self.state.request_stop(self.state.reason or "end of every source")

        def teardown() -> None:
            self.stop(self.state.reason)
            self._finish(batcher)

        error = guarded(self.state, body, teardown) or batcher.error
        if error is not None:
            raise error
        failed = [lane for lane in self.lanes if lane.error is not None]
        if failed:
            first = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise PemError(
                f"{len(failed)} of {len(self.lanes)} sources failed: {first.name}: {first.error}{more}"
            )
        return self.metrics

    def _open(self) -> None:
        """Open the sources and their outputs; start a capture thread per source."""
        out = self.outputs
        self._every = Every(out.progress_every)
        for lane in self.lanes:
            lane.source.open()
        per_source, preview = record_targets(out.record, len(self.lanes))
        for lane in self.lanes:
            if per_source is not None:
                lane.recorder = Recorder(per_source[lane.index], lane.source.fps, out.record_codec)
            if out.save_masks is not None:
                lane.masks = MaskWriter(out.save_masks / f"source{lane.index}")
        if preview is not None:
            self._preview = Recorder(preview, max(lane.source.fps for lane in self.lanes), out.record_codec)
        for lane in self.lanes:
            lane.capture = CaptureThread(
                lane.source, lane.queue, lane.metrics, lane.stop, self.max_frames, self.segmenter.prepare
            )
            lane.capture.name = f"capture-{lane.index}"
            lane.capture.start()

    def _handle(self, batch: Batch) -> bool:
        self._output(batch)
        return False

    def _idle(self, batcher: Batcher) -> bool:
        if self.outputs.show:
            poll_window(self.stop)
        return self.state.stop.is_set() and batcher.finished.is_set()

    def _finish(self, batcher: Batcher) -> None:
        """Wait for the threads (bounded), close the sources, finalise the recordings."""
        deadline = time.perf_counter() + self.join_timeout
        if batcher.ident is not None:
            batcher.finished.wait(30)  # the batch in flight
        for lane in self.lanes:
            capture = lane.capture
            if capture is not None and capture.ident is not None:
                if not capture.finished.wait(max(0.0, deadline - time.perf_counter())):
                    self.log(f"{lane.name} is still blocked in a read; left to finish in the background")
                    continue
                if lane.error is None and capture.error is not None:
                    lane.error = capture.error
            lane.source.close()
            if lane.recorder is not None:
                path = lane.recorder.close()
                if path is not None:
                    self.recorded.append(path)
        if self._preview is not None:
            path = self._preview.close()
            if path is not None:
                self.recorded.append(path)
        if self.outputs.show:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(WINDOW)

    def _output(self, batch: Batch) -> None:
        out = self.outputs
        draw_tiles = out.show or self._preview is not None
        if draw_tiles:
            self.tiles.fix_size([frame.image for _, frame, _ in batch])
        sink_overlay = wants_overlay(out.sinks)
        for lane, frame, result in batch:
            start = time.perf_counter()
            image = None
            if draw_tiles or lane.recorder is not None or out.render or sink_overlay:
                hud = lane.hud
                update_hud(hud, lane.rate, lane.metrics, result, (start - frame.captured) * 1e3)
                if lane.recorder is not None or out.render or sink_overlay:
                    image = self.overlay.render(frame.image, result, hud)
                    if lane.recorder is not None:
                        lane.recorder.write(image)
                if draw_tiles:  # drawn at the tile's size, so the HUD and legend are sized for it
                    size = self.tiles.fit(frame.image.shape[:2])
                    if image is not None and image.shape[:2] == size:
                        lane.shown = image
                    else:
                        lane.shown = self.overlay.render(*resized(frame.image, result, size), hud)
            finish_frame(frame, result, lane.masks, lane.metrics, lane.rate, start)
            to_sinks(out.sinks, lane.index, frame, image, result, lane.metrics)
        if draw_tiles:
            mosaic = self.preview()
            if mosaic is not None:
                if self._preview is not None:
                    self._preview.write(mosaic)
                if out.show:
                    cv2.imshow(WINDOW, mosaic)
                    poll_window(self.stop)

    def preview(self) -> np.ndarray | None:
        """The tiled preview of every source's newest overlay (None before the first one)."""
        captions = [
            f"{lane.index}  {lane.source.description}  {lane.rate.rate:.1f} FPS" for lane in self.lanes
        ]
        return self.tiles.compose(
            [lane.shown for lane in self.lanes], captions, [bool(lane.ended) for lane in self.lanes]
        )

    def _progress(self) -> None:
        m = self.metrics
        per = "/".join(str(s.frames) for s in m.sources)
        self.log(
            f"frames {m.frames} ({per}): {m.fps:.1f} FPS in all, mean batch {m.mean_batch:.2f}, "
            f"dropped {m.dropped}"
        )
