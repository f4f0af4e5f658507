"""``--metrics-port N``: the stream's metrics as a Prometheus endpoint (prometheus-client), live.

Read at scrape time from the same objects the ``--metrics`` JSON is written from, so the two always
agree. Per source (label ``source``: its index, ``name``: its description):

    pem_frames_total, pem_captured_total, pem_dropped_total, pem_reconnects_total, pem_decode_errors_total
    pem_fps                                  throughput since the first output
    pem_stage_latency_ms{stage=...}           histogram per stage (capture ... end_to_end)
and for several sources batched through one model: pem_batches_total, pem_batch_size (histogram).

The latency buckets are the edges of every 50th bin of the runtime's own log-spaced histogram
(runtime/metrics.py: 1 us .. 100 s, 40 buckets, x1.58 apart), so bucket counts are exact, not re-binned.
Served on its own registry (never the process-global one) by prometheus-client's HTTP server.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pem_rt.errors import PemError
from runtime.metrics import BINS, STAGES, LatencyHistogram, StreamMetrics, bin_edge

BUCKET_EVERY = 50  # bins of LatencyHistogram per Prometheus bucket


def bucket_bounds() -> list[float]:
    """Upper bounds (ms) of the Prometheus buckets, the last being +Inf."""
    edges = [bin_edge(i) for i in range(BUCKET_EVERY, BINS, BUCKET_EVERY)]
    return [*edges, math.inf]


def histogram_buckets(h: LatencyHistogram) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs of ``h`` at :func:`bucket_bounds`."""
    out, total = [], 0
    for k, bound in enumerate(bucket_bounds()):
        total += sum(h.counts[k * BUCKET_EVERY : (k + 1) * BUCKET_EVERY])
        out.append(("+Inf" if math.isinf(bound) else repr(bound), float(total)))
    return out


@dataclass(frozen=True)
class Watched:
    """One source's live metrics and how it is labelled; ``decode_errors`` reads its failed reads."""

    index: int
    name: str
    metrics: StreamMetrics
    decode_errors: Callable[[], int] = lambda: 0


class StreamCollector:
    """A prometheus-client collector over the running stream's metrics objects."""

    def __init__(self, sources: Sequence[Watched], batches: Any = None) -> None:
        self.sources, self.batches = list(sources), batches

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        labels = ["source", "name"]
        counters = {
            "frames": ("frames through the whole pipeline", lambda w: w.metrics.frames),
            "captured": ("frames the source delivered", lambda w: w.metrics.captured),
            "dropped": ("live frames dropped to keep latency bounded", lambda w: w.metrics.dropped),
            "reconnects": ("times a lost source came back", lambda w: w.metrics.reconnects),
            "decode_errors": ("reads that returned no frame from a live source", lambda w: w.decode_errors()),
        }
        for key, (doc, read) in counters.items():
            family = CounterMetricFamily(f"pem_{key}", doc, labels=labels)
            for w in self.sources:
                family.add_metric([str(w.index), w.name], float(read(w)))
            yield family
        fps = GaugeMetricFamily("pem_fps", "frames per second since the first output", labels=labels)
        for w in self.sources:
            fps.add_metric([str(w.index), w.name], w.metrics.fps)
        yield fps
        latency = HistogramMetricFamily(
            "pem_stage_latency_ms", "latency per pipeline stage (ms)", labels=[*labels, "stage"]
        )
        for w in self.sources:
            for stage in STAGES:
                h = w.metrics.stages[stage]
                latency.add_metric([str(w.index), w.name, stage], histogram_buckets(h), h.total)
        yield latency
        if self.batches is not None:
            yield from self._batches()

    def _batches(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        m = self.batches
        batches = CounterMetricFamily("pem_batches", "inference calls of the batched run")
        batches.add_metric([], float(m.batches))
        yield batches
        sizes = dict(m.batch_sizes)
        top = max(sizes, default=1)
        buckets, total = [], 0
        for size in range(1, top + 1):
            total += sizes.get(size, 0)
            buckets.append((str(size), float(total)))
        buckets.append(("+Inf", float(total)))
        family = HistogramMetricFamily("pem_batch_size", "frames per inference call")
        family.add_metric([], buckets, float(sum(k * v for k, v in sizes.items())))
        yield family


class Telemetry:
    """Serve ``collector`` on ``host:port`` until :meth:`close` (``port`` 0: a free one, see ``port``)."""

    def __init__(self, collector: StreamCollector, port: int, host: str = "127.0.0.1") -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise PemError(f"--metrics-port {port}: cannot listen on {host}:{port} ({e.strerror})") from None
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
