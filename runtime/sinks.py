"""Output sinks: where each processed frame goes besides the window, the recording and the mask files.

The stream loop hands every sink one :class:`Delivered` per frame, in the output stage, after the
frame's metrics are booked: the source it came from, the frame, the overlay (when a sink asked for one),
the result and its latency. The live view (runtime/live_view.py), the results file (runtime/results.py)
and the Python streaming API (runtime/streaming.py) are sinks. Whoever made a sink closes it (the stream
command on every way out, after ``--linger``); the loop only writes to it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from runtime.capture import Frame
from runtime.metrics import StreamMetrics

if TYPE_CHECKING:
    from runtime.segmenter import Result  # types only: segmenter imports the stream loop (Segmenter.stream)


@dataclass(frozen=True)
class Delivered:
    """One processed frame, as a sink sees it.

    Args:
        source: the source's index (0 for a single stream).
        frame: the captured frame (``frame.image`` is the original BGR image, ``frame.index`` its number).
        overlay: the rendered overlay (BGR, the frame's size) when any sink wants one, else None.
        result: the segmentation.
        latency_ms: capture -> output done, this frame.
        metrics: the source's running metrics (frames, dropped, per-stage histograms).
    """

    source: int
    frame: Frame
    overlay: np.ndarray | None
    result: Result
    latency_ms: float
    metrics: StreamMetrics


class Sink(Protocol):
    """Gets every processed frame; ``wants_overlay`` asks the loop to render the overlay for it."""

    wants_overlay: bool

    def write(self, item: Delivered) -> None: ...

    def close(self) -> None: ...


def wants_overlay(sinks: tuple[Sink, ...]) -> bool:
    return any(s.wants_overlay for s in sinks)


def deliver(sinks: tuple[Sink, ...], item: Delivered) -> None:
    for sink in sinks:
        sink.write(item)


def to_sinks(
    sinks: tuple[Sink, ...],
    source: int,
    frame: Frame,
    overlay: np.ndarray | None,
    result: Result,
    metrics: StreamMetrics,
) -> None:
    """The stream loop's one hook: hand a finished frame to every sink (nothing to do without sinks)."""
    if sinks:
        latency = (time.perf_counter() - frame.captured) * 1e3
        deliver(sinks, Delivered(source, frame, overlay, result, latency, metrics))


def close_all(sinks: tuple[Sink, ...]) -> None:
    """Close every sink (each one even when another raises; the first error is raised after)."""
    error: BaseException | None = None
    for sink in sinks:
        try:
            sink.close()
        except BaseException as e:
            error = error or e
    if error is not None:
        raise error
