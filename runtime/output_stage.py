"""The output stage both stream runtimes share (one source: runtime/pipeline.py; several, batched:
runtime/multistream.py): where results go, the per-frame bookkeeping, the window, progress lines and
the loop that drains the inference thread's results in the calling thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import cv2

from runtime.capture import BoundedQueue, Closed, Frame
from runtime.masks import MaskWriter
from runtime.metrics import RateMeter, StreamMetrics
from runtime.overlay import HudStats
from runtime.sinks import Sink, wants_overlay

if TYPE_CHECKING:
    from runtime.segmenter import Result  # types only: segmenter imports the stream loop (Segmenter.stream)

WINDOW = "PEM-RT"
T = TypeVar("T")


def window_unavailable() -> str | None:
    """Why no window can be shown here (None when one can)."""
    import os

    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set)"
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        return "this OpenCV has no GUI (opencv-python-headless)"
    return None


@dataclass
class Outputs:
    """Where results go: ``show`` a window, ``record`` a video of the overlay, ``save_masks`` label PNGs."""

    show: bool = False
    record: Path | None = None
    save_masks: Path | None = None
    alpha: float = 0.5
    hud: bool = True
    progress_every: float = 5.0  # seconds between headless progress lines (0 = none)
    render: bool = False  # draw the overlay even when no window or recording shows it (benchmarks)
    record_codec: str = "h264"  # runtime/recorder.py CODECS
    sinks: tuple[Sink, ...] = ()  # runtime/sinks.py: each processed frame also goes to these

    @property
    def overlay_wanted(self) -> bool:
        """Whether a frame's overlay is drawn: a window, a recording, a benchmark or a sink shows it."""
        return self.show or self.render or self.record is not None or wants_overlay(self.sinks)


@dataclass
class RunState:
    stop: threading.Event = field(default_factory=threading.Event)
    reason: str = ""

    def request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            self.reason = reason
            self.stop.set()


class Every:
    """True once every ``seconds`` (never when ``seconds`` is 0): when the next progress line is due."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.last = seconds, time.perf_counter()

    def due(self) -> bool:
        now = time.perf_counter()
        if not self.seconds or now - self.last < self.seconds:
            return False
        self.last = now
        return True


def update_hud(
    hud: HudStats, rate: RateMeter, metrics: StreamMetrics, result: Result, latency_ms: float
) -> None:
    hud.fps = rate.rate
    hud.frames, hud.dropped = metrics.frames, metrics.dropped
    hud.infer_ms = result.timings.get("infer", 0.0)
    hud.latency_ms = latency_ms


def finish_frame(
    frame: Frame,
    result: Result,
    masks: MaskWriter | None,
    metrics: StreamMetrics,
    rate: RateMeter,
    start: float,
) -> None:
    """The end of one frame's output: its label files, and the output / end-to-end timings."""
    if masks is not None:
        masks.write(frame.stem, result)
    now = time.perf_counter()
    metrics.add("output", (now - start) * 1e3)
    metrics.add("end_to_end", (now - frame.captured) * 1e3)
    metrics.output_done(now)
    rate.tick(now)


def poll_window(stop: Callable[[str], None]) -> None:
    """Let the window draw; q / Q / Esc or closing it stops the run."""
    key = cv2.waitKey(1) & 0xFF
    if key in (ord("q"), ord("Q"), 27):
        stop("q pressed")
    elif cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
        stop("window closed")


def drain(
    results: BoundedQueue[T],
    handle: Callable[[T], bool],
    idle: Callable[[], bool],
    progress: Callable[[], None],
    every: Every,
) -> None:
    """Hand each result to ``handle`` until the queue closes or ``handle`` returns True (done);
    ``idle`` runs when nothing arrived within 0.1 s and returns True when the run is over."""
    while True:
        try:
            item = results.get(0.1)
        except Closed:
            return
        if item is None:
            if idle():
                return
            continue
        if handle(item):
            return
        if every.due():
            progress()


def guarded(state: RunState, body: Callable[[], None], teardown: Callable[[], None]) -> BaseException | None:
    """Run ``body``; Ctrl-C stops the run, any other error is returned (the run stopped as "error");
    ``teardown`` runs on every way out."""
    try:
        body()
    except KeyboardInterrupt:
        state.request_stop("Ctrl-C")
    except BaseException as e:
        state.request_stop("error")
        return e
    finally:
        teardown()
    return None
