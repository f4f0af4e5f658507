"""What an operator watches a stream run through: the live view, the Prometheus endpoint, the results file.

``pem stream`` fills :class:`RunOutputOptions` from its flags and opens them around the run with
:func:`open_run_outputs`; the loop sees only the sinks (runtime/sinks.py) and the endpoint reads the
loop's metrics objects. ``linger`` keeps the page and the endpoint up after the stream ends (the last
frame, the final counters) until the time is up, SIGTERM or Ctrl-C; then everything is closed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from pem_rt.model_meta import ModelMeta
from runtime.sinks import Sink, close_all
from runtime.telemetry import StreamCollector, Telemetry, Watched

Log = Callable[[str], None]


@dataclass(frozen=True)
class RunOutputOptions:
    """Args:
    serve: (host, port) of the live view, or None.
    metrics_at: (host, port) of the Prometheus endpoint, or None.
    results: a JSON-lines file, ``-`` for stdout, or None.
    linger: seconds the live view and endpoint stay up after the stream ends.
    """

    serve: tuple[str, int] | None = None
    metrics_at: tuple[str, int] | None = None
    results: str | None = None
    linger: float = 0.0


@dataclass
class RunOutputs:
    """The opened outputs of one run; ``sinks`` go into the loop's Outputs."""

    options: RunOutputOptions
    log: Log
    sinks: tuple[Sink, ...] = ()
    live_url: str | None = None
    telemetry: Telemetry | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def watch(self, sources: Sequence[Watched], batches: Any = None) -> None:
        """Start the Prometheus endpoint over the loop's metrics (no-op without ``metrics_at``)."""
        if self.options.metrics_at is None:
            return
        host, port = self.options.metrics_at
        self.telemetry = Telemetry(StreamCollector(sources, batches), port, host)
        self._closers.append(self.telemetry.close)
        self.log(f"Prometheus metrics: {self.telemetry.url}")

    def linger(self) -> None:
        """Keep the page and the endpoint up for ``options.linger`` s (SIGTERM or Ctrl-C ends it)."""
        if self.options.linger <= 0 or (self.live_url is None and self.telemetry is None):
            return
        done = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            done.set()

        previous = signal.signal(signal.SIGTERM, on_signal)
        self.log(
            f"stream ended: serving the last frame and metrics for {self.options.linger:g} s (Ctrl-C ends)"
        )
        try:
            done.wait(self.options.linger)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)

    def close(self) -> None:
        error: BaseException | None = None
        try:
            close_all(self.sinks)
        except BaseException as e:
            error = e
        for close in self._closers:
            with contextlib.suppress(OSError):
                close()
        if error is not None:
            raise error


@contextlib.contextmanager
def open_run_outputs(
    options: RunOutputOptions, meta: ModelMeta, source_names: list[str], log: Log
) -> Iterator[RunOutputs]:
    """Open what ``options`` asks for; on a normal end linger, then close it all (on every way out)."""
    outputs = RunOutputs(options, log)
    sinks: list[Sink] = []
    results = None
    try:
        if options.results is not None:
            from runtime.results import ResultsWriter

            results = ResultsWriter(options.results, meta, source_names)
            sinks.append(results)
        if options.serve is not None:
            from runtime.live_view import LiveView

            view = LiveView(meta, source_names, *options.serve)
            sinks.append(view)
            outputs.live_url = view.url
            log(f"live view: {view.url}")
        outputs.sinks = tuple(sinks)
        yield outputs
        if results is not None:  # in place before any lingering
            sinks.remove(results)
            results.close()
            if results.path is not None:
                log(f"wrote {results.path} ({results.lines} lines)")
        outputs.linger()
    finally:
        outputs.sinks = tuple(sinks)
        outputs.close()
