"""The capture thread and the small bounded queues between the pipeline's stages.

A live source never waits for the pipeline: when the queue is full the oldest frame is dropped (and
counted), so latency never grows. A file source waits instead, so every frame is processed.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from runtime.metrics import StreamMetrics
from runtime.sources import Source

if TYPE_CHECKING:
    from runtime.segmenter import Prepared  # types only: segmenter imports the stream loop (Segmenter.stream)

T = TypeVar("T")


class Closed(Exception):
    """The queue was closed and is empty: the producer has finished."""


class BoundedQueue(Generic[T]):
    """A FIFO of at most ``size`` items. ``put(drop_oldest=True)`` never blocks; ``close()`` ends it.

    A producer waiting for room is woken only once the queue has drained to ``refill_at`` items (default
    ``size - 1``): with ``size=4, refill_at=2`` a file reader wakes once per two frames, not per frame.
    Queues given one shared ``cond`` let a consumer wait for any of them (the multi-stream batcher).
    """

    def __init__(
        self, size: int, refill_at: int | None = None, cond: threading.Condition | None = None
    ) -> None:
        if size < 1:
            raise ValueError("queue size must be >= 1")
        self.size = size
        self.refill_at = size - 1 if refill_at is None else refill_at
        self._items: collections.deque[T] = collections.deque()
        self._cond = cond or threading.Condition()
        self._closed = False

    def put(self, item: T, drop_oldest: bool, stop: threading.Event) -> int:
        """Add ``item``; returns how many old items were dropped to make room (0 or 1).

        With ``drop_oldest=False`` it waits for room (re-checking ``stop`` every 50 ms, and returns
        without adding once it is set).
        """
        with self._cond:
            dropped = 0
            while len(self._items) >= self.size:
                if drop_oldest:
                    self._items.popleft()
                    dropped += 1
                else:
                    if stop.is_set() or self._closed:
                        return 0
                    self._cond.wait(0.05)
            self._items.append(item)
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float = 0.1) -> T | None:
        """The oldest item; None after ``timeout`` seconds without one; :class:`Closed` at the end."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items:
                item = self._items.popleft()
                if len(self._items) <= self.refill_at:
                    self._cond.notify_all()
                return item
            if self._closed:
                raise Closed
            return None

    def take_newest(self) -> tuple[T, int] | None:
        """The newest item and how many older ones were discarded with it; None when empty (no wait)."""
        with self._cond:
            if not self._items:
                return None
            item = self._items.pop()
            skipped = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return item, skipped

    def take_oldest(self) -> T | None:
        """The oldest item, or None when empty (no wait)."""
        with self._cond:
            if not self._items:
                return None
            item = self._items.popleft()
            if len(self._items) <= self.refill_at:
                self._cond.notify_all()
            return item

    @property
    def ended(self) -> bool:
        """Closed and drained: the producer has finished and every item was taken."""
        with self._cond:
            return self._closed and not self._items

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Frame:
    index: int  # position in the source (dropped frames keep their numbers)
    image: np.ndarray
    stem: str  # file stem for saved masks
    captured: float  # perf_counter when the frame arrived
    prepared: Prepared | None = None  # the frame fitted to the model input, made by the capture thread


class CaptureThread(threading.Thread):
    """Reads ``source`` into ``queue`` until EOF, ``max_frames``, ``stop`` or an error (kept in ``error``).

    With ``prepare`` (``Segmenter.prepare``) each frame is also fitted to the model input here, so the
    resize overlaps the inference of the previous frame instead of preceding it.
    """

    def __init__(
        self,
        source: Source,
        queue: BoundedQueue[Frame],
        metrics: StreamMetrics,
        stop: threading.Event,
        max_frames: int | None = None,
        prepare: Callable[[np.ndarray], Prepared] | None = None,
    ) -> None:
        super().__init__(name="capture", daemon=True)
        self.source, self.queue, self.metrics, self.stop = source, queue, metrics, stop
        self.max_frames = max_frames
        self.prepare = prepare
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        index = 0
        try:
            while not self.stop.is_set():
                if self.max_frames is not None and not self.source.live and index >= self.max_frames:
                    break
                start = time.perf_counter()
                image = self.source.read(self.stop)
                now = time.perf_counter()
                self.metrics.lost = self.source.lost
                if image is None:
                    break
                self.metrics.add("capture", (now - start) * 1e3)
                self.metrics.captured += 1
                self.metrics.reconnects = self.source.reconnects
                frame = Frame(index, image, self.source.stem(index), now)
                if self.prepare is not None:
                    frame.prepared = self.prepare(image)
                self.metrics.dropped += self.queue.put(frame, drop_oldest=self.source.live, stop=self.stop)
                index += 1
        except BaseException as e:  # handed to the main thread, which reports it
            self.error = e
        finally:
            self.queue.close()
            self.finished.set()
