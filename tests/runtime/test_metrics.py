"""Latency histograms: percentiles within 1 % of numpy's, constant memory."""

from __future__ import annotations

import numpy as np

from runtime.metrics import LatencyHistogram, RateMeter, StreamMetrics


def test_percentiles_match_numpy() -> None:
    samples = np.random.default_rng(0).lognormal(mean=3.0, sigma=0.6, size=20_000)
    h = LatencyHistogram()
    for s in samples:
        h.add(float(s))
    for q in (50, 90, 99):
        want = float(np.percentile(samples, q, method="inverted_cdf"))
        assert abs(h.percentile(q) - want) / want < 0.01, q
    assert h.count == samples.size and abs(h.mean - samples.mean()) < 1e-6 * samples.mean()
    assert h.min == samples.min() and h.max == samples.max()
    assert len(h.counts) == 2000  # the same however many samples


def test_rate_meter_and_json() -> None:
    meter = RateMeter()
    for i in range(50):
        meter.tick(i * 0.04)
    assert abs(meter.rate - 25.0) < 1e-6
    m = StreamMetrics()
    m.add("infer", 5.0)
    for t in (1.0, 1.5, 2.0):
        m.output_done(t)
    d = m.to_json(source="x")
    assert d["source"] == "x" and d["frames"] == 3 and d["fps"] == 2.0
    assert d["latency_ms"]["infer"]["p50"] == 5.0 and d["latency_ms"]["queue"] == {"count": 0}
