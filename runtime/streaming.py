"""``Segmenter.stream``: the CLI's stream loop as a Python iterator or a callback.

    seg = Segmenter("model.onnx")
    for frame, result in seg.stream("rtsp://cam.local/live"):     # or a file, folder, camera index
        ...                                                       # stop any time: break
    metrics = seg.stream("clip.mp4", callback=lambda frame, result: ...)   # returns when it ends

Same capture, newest-frame and reconnect behaviour as ``pem stream`` (it is the same loop): a live source
keeps only the newest frames while the caller is busy, a file delivers every frame. The iterator runs
the loop in a background thread and hands over one frame at a time; leaving the loop (break, an
exception, garbage collection) stops the stream and releases the source.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from runtime.capture import BoundedQueue, Closed
from runtime.metrics import StreamMetrics
from runtime.sinks import Delivered
from runtime.sources import Source, open_source

if TYPE_CHECKING:
    from runtime.segmenter import Result, Segmenter

Callback = Callable[[np.ndarray, "Result"], object]
SourceLike = Source | str | int


@dataclass(frozen=True)
class StreamOptions:
    """Args:
    max_frames: stop after this many frames (None: until the source ends).
    realtime: pace the synthetic source like a camera.
    reconnect_timeout: seconds to keep reopening a lost camera or stream.
    log: where reconnect notices go (default: nowhere).
    """

    max_frames: int | None = None
    realtime: bool = False
    reconnect_timeout: float = 30.0
    log: Callable[[str], None] = lambda _: None


def as_source(source: SourceLike, options: StreamOptions) -> Source:
    """A :class:`Source`, a ``--source`` string or a camera index -> a Source."""
    if isinstance(source, Source):
        return source
    if isinstance(source, int):
        return open_source(None, source, options.realtime, options.reconnect_timeout, options.log)
    return open_source(str(source), None, options.realtime, options.reconnect_timeout, options.log)


class _Callback:
    wants_overlay = False

    def __init__(self, callback: Callback) -> None:
        self.callback = callback

    def write(self, item: Delivered) -> None:
        self.callback(item.frame.image, item.result)

    def close(self) -> None:
        pass


def run_callback(
    segmenter: Segmenter, source: SourceLike, callback: Callback, options: StreamOptions
) -> StreamMetrics:
    """Call ``callback(frame, result)`` for every processed frame (in this thread) until the end."""
    from runtime.pipeline import Outputs, Pipeline

    outputs = Outputs(progress_every=0.0, sinks=(_Callback(callback),))
    pipeline = Pipeline(segmenter, as_source(source, options), outputs, options.max_frames, log=options.log)
    return pipeline.run()


def iterate(
    segmenter: Segmenter, source: SourceLike, options: StreamOptions
) -> Iterator[tuple[np.ndarray, Result]]:
    """Yield (frame, result) pairs; the loop runs in a background thread (see the module docstring)."""
    from runtime.pipeline import Outputs, Pipeline

    handed: BoundedQueue[tuple[np.ndarray, Result]] = BoundedQueue(1)
    stop = threading.Event()
    outputs = Outputs(
        progress_every=0.0,
        sinks=(_Callback(lambda frame, result: handed.put((frame, result), drop_oldest=False, stop=stop)),),
    )
    pipeline = Pipeline(segmenter, as_source(source, options), outputs, options.max_frames, log=options.log)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pipeline.run()
        except BaseException as e:
            errors.append(e)
        finally:
            handed.close()

    worker = threading.Thread(target=run, name="stream", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = handed.get(0.1)
            except Closed:
                break
            if item is not None:
                yield item
    finally:
        stop.set()
        pipeline.stop("the caller stopped")
        worker.join(30)
    if errors:
        raise errors[0]
