"""The stream pipeline: capture thread -> inference thread -> output stage (the calling thread).

    capture ──[queue 2: live keeps the newest / files wait]──> inference ──[queue 2]──> output
    (source.read)                                              (Segmenter)              overlay, window,
                                                                                       record, masks

Three stages overlap, so throughput is the slowest stage's (inference) and the others cost almost
nothing. The output stage runs in the calling (main) thread, where windows and Ctrl-C belong; when there
is nothing to show, record, save or render (headless with only metrics), its bookkeeping runs at the end
of the inference thread instead, saving a thread hand-off per frame. File sources use an 8-frame queue
refilled four frames at a time (one reader wake-up per four frames). The run
ends at the source's end, after ``max_frames``, on Ctrl-C / SIGTERM / q / Esc / a closed window, or on an
error in any stage; every way out finalises the recording and returns the metrics.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from runtime.capture import BoundedQueue, CaptureThread, Closed, Frame
from runtime.masks import MaskWriter
from runtime.metrics import RateMeter, StreamMetrics
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
    window_unavailable,
)
from runtime.overlay import HudStats, Overlay
from runtime.recorder import Recorder
from runtime.sinks import to_sinks
from runtime.sources import Source

if TYPE_CHECKING:
    from runtime.segmenter import (  # types only: segmenter imports the stream loop (Segmenter.stream)
        Result,
        Segmenter,
    )

__all__ = ["WINDOW", "InferenceThread", "Outputs", "Pipeline", "RunState", "window_unavailable"]

Log = Callable[[str], None]


class InferenceThread(threading.Thread):
    """Segments frames from ``frames`` and hands each (frame, result) to ``deliver``; closes ``results``."""

    def __init__(
        self,
        segmenter: Segmenter,
        frames: BoundedQueue[Frame],
        deliver: Callable[[Frame, Result], None],
        results: BoundedQueue[tuple[Frame, Result]],
        metrics: StreamMetrics,
        stop: threading.Event,
    ) -> None:
        super().__init__(name="inference", daemon=True)
        self.segmenter, self.frames, self.deliver = segmenter, frames, deliver
        self.results, self.metrics, self.stop = results, metrics, stop
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    frame = self.frames.get(0.1)
                except Closed:
                    break
                if frame is None:
                    continue
                prepared = frame.prepared or self.segmenter.prepare(frame.image)
                waited = time.perf_counter() - frame.captured - (prepared.ms / 1e3 if frame.prepared else 0.0)
                self.metrics.add("queue", waited * 1e3)
                result = self.segmenter.run(prepared)
                for stage, ms in result.timings.items():
                    self.metrics.add(stage, ms)
                self.deliver(frame, result)
        except BaseException as e:
            self.error = e
        finally:
            self.results.close()
            self.finished.set()


class Pipeline:
    """Args:
    segmenter: the model.
    source: an unopened or opened :class:`Source` (opened here if needed, closed at the end).
    outputs: what to do with each result.
    max_frames: stop after this many processed frames (None = until the source ends or a stop).
    queue_size: frames buffered between stages (small: latency).
    log: where notices and progress lines go.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        source: Source,
        outputs: Outputs | None = None,
        max_frames: int | None = None,
        queue_size: int = 2,
        log: Log = print,
    ) -> None:
        self.segmenter, self.source = segmenter, source
        self.outputs = outputs or Outputs()
        self.max_frames = max_frames
        self.queue_size = queue_size
        self.log = log
        self.state = RunState()
        self.metrics = StreamMetrics()
        self.recorded: Path | None = None
        self.overlay = Overlay(segmenter.meta, self.outputs.alpha, self.outputs.hud)
        self._rate = RateMeter()
        self._hud = HudStats(backend=segmenter.name)

    def stop(self, reason: str = "stopped") -> None:
        """Ask the run to end (thread-safe; for signal handlers and other threads)."""
        self.state.request_stop(reason)

    def run(self) -> StreamMetrics:
        """Process the stream; raises the first stage error (PemError for the expected ones)."""
        out = self.outputs
        self.source.open()
        recorder = Recorder(out.record, self.source.fps, out.record_codec) if out.record else None
        masks = MaskWriter(out.save_masks) if out.save_masks else None
        if self.source.live:
            frames: BoundedQueue[Frame] = BoundedQueue(self.queue_size)
        else:
            frames = BoundedQueue(4 * self.queue_size, refill_at=2 * self.queue_size)
        results: BoundedQueue[tuple[Frame, Result]] = BoundedQueue(self.queue_size)
        stop = self.state.stop
        # with nothing to show, record, save, render or hand to a sink, the output bookkeeping runs in the
        # inference thread
        threaded = out.overlay_wanted or masks is not None or bool(out.sinks)

        def hand_over(frame: Frame, result: Result) -> None:
            results.put((frame, result), drop_oldest=False, stop=stop)

        def inline(frame: Frame, result: Result) -> None:
            self._output(frame, result, None, None)
            self._count_done()

        capture = CaptureThread(
            self.source, frames, self.metrics, stop, self.max_frames, self.segmenter.prepare
        )
        infer = InferenceThread(
            self.segmenter, frames, hand_over if threaded else inline, results, self.metrics, stop
        )

        def body() -> None:
            capture.start()
            infer.start()
            if threaded:
                self._drain(results, infer, recorder, masks)
            else:
                self._wait_inline(infer)
            self.state.request_stop(self.state.reason or "end of source")

        def teardown() -> None:
            self.state.stop.set()
            if capture.ident is not None:
                capture.finished.wait(10)  # a network read times out after 5 s
            if infer.ident is not None:
                infer.finished.wait(30)  # the frame in flight
            self.source.close()
            if recorder is not None:
                self.recorded = recorder.close()
            if out.show:
                with contextlib.suppress(cv2.error):
                    cv2.destroyWindow(WINDOW)

        error = guarded(self.state, body, teardown) or capture.error or infer.error
        if error is not None:
            raise error
        return self.metrics

    def _count_done(self) -> bool:
        """After a frame's output: True (and the run stops) once ``max_frames`` are done."""
        if self.max_frames is not None and self.metrics.frames >= self.max_frames:
            self.state.request_stop(f"{self.max_frames} frames done")
            return True
        return False

    def _wait_inline(self, infer: InferenceThread) -> None:
        # an Event, not Thread.join: Ctrl-C inside join() can mark a running thread as stopped
        # (CPython's bpo-45274 handling), and the model would then be closed under it
        every = Every(self.outputs.progress_every)
        while not infer.finished.wait(0.1):
            if every.due():
                self._progress()

    def _drain(
        self,
        results: BoundedQueue[tuple[Frame, Result]],
        infer: InferenceThread,
        recorder: Recorder | None,
        masks: MaskWriter | None,
    ) -> None:
        def handle(item: tuple[Frame, Result]) -> bool:
            self._output(item[0], item[1], recorder, masks)
            return self._count_done()

        def idle() -> bool:
            if self.outputs.show:
                poll_window(self.state.request_stop)
            return self.state.stop.is_set() and not infer.is_alive()

        drain(results, handle, idle, self._progress, Every(self.outputs.progress_every))

    def _output(
        self, frame: Frame, result: Result, recorder: Recorder | None, masks: MaskWriter | None
    ) -> None:
        start = time.perf_counter()
        out = self.outputs
        image = None
        if out.overlay_wanted:
            update_hud(self._hud, self._rate, self.metrics, result, (start - frame.captured) * 1e3)
            image = self.overlay.render(frame.image, result, self._hud)
            if recorder is not None:
                recorder.write(image)
            if out.show:
                cv2.imshow(WINDOW, image)
                poll_window(self.state.request_stop)
        finish_frame(frame, result, masks, self.metrics, self._rate, start)
        to_sinks(out.sinks, 0, frame, image, result, self.metrics)

    def _progress(self) -> None:
        m = self.metrics
        e2e = m.stages["end_to_end"]
        self.log(
            f"frame {m.frames}: {self._rate.rate:.1f} FPS, latency p50 {e2e.percentile(50):.1f} ms, "
            f"dropped {m.dropped}"
        )
