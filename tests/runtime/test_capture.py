"""Live sources never wait and keep the newest frames; file sources lose none."""

from __future__ import annotations

import threading
import time

import numpy as np

from runtime.capture import BoundedQueue, CaptureThread, Closed, Frame
from runtime.metrics import StreamMetrics
from runtime.sources import Source


class Counter(Source):
    """Frames numbered by their pixel value, as fast as possible, ``n`` of them."""

    def __init__(self, n: int, live: bool) -> None:
        self.n, self.live, self.i = n, live, 0

    def read(self, stop: threading.Event) -> np.ndarray | None:
        if self.i >= self.n:
            return None
        self.i += 1
        return np.full((2, 2, 3), self.i - 1, np.uint8)


def drain(q: BoundedQueue[Frame], delay: float) -> list[int]:
    got = []
    while True:
        try:
            item = q.get(0.5)
        except Closed:
            return got
        if item is not None:
            got.append(item.index)
            time.sleep(delay)


def test_queue_drops_the_oldest_without_blocking() -> None:
    q: BoundedQueue[int] = BoundedQueue(2)
    stop = threading.Event()
    assert [q.put(i, drop_oldest=True, stop=stop) for i in range(5)] == [0, 0, 1, 1, 1]
    assert [q.get(), q.get()] == [3, 4]


def test_live_capture_keeps_the_newest_frames_and_counts_drops() -> None:
    q: BoundedQueue[Frame] = BoundedQueue(2)
    metrics, stop = StreamMetrics(), threading.Event()
    thread = CaptureThread(Counter(200, live=True), q, metrics, stop)
    start = time.perf_counter()
    thread.start()
    got = drain(q, delay=0.01)  # a consumer much slower than the source
    assert time.perf_counter() - start < 5
    assert metrics.captured == 200 and metrics.dropped == 200 - len(got) > 100
    assert got == sorted(got) and got[-1] == 199  # in order, and the newest frame is never lost


def test_file_capture_waits_and_loses_nothing() -> None:
    q: BoundedQueue[Frame] = BoundedQueue(2)
    metrics, stop = StreamMetrics(), threading.Event()
    thread = CaptureThread(Counter(30, live=False), q, metrics, stop, max_frames=25)
    thread.start()
    assert drain(q, delay=0.002) == list(range(25))
    assert metrics.dropped == 0 and thread.error is None


def test_stop_ends_a_blocked_producer() -> None:
    q: BoundedQueue[Frame] = BoundedQueue(1)
    metrics, stop = StreamMetrics(), threading.Event()
    thread = CaptureThread(Counter(10_000, live=False), q, metrics, stop)
    thread.start()
    time.sleep(0.2)
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive() and metrics.captured <= 3
