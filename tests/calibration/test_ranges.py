"""Range methods on known distributions; the entropy search against an exhaustive one."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.ranges import NUM_BINS, _kl_at, entropy_threshold, percentile_threshold


def _hist(values: np.ndarray) -> tuple[np.ndarray, float]:
    amax = float(np.abs(values).max())
    return np.histogram(np.abs(values), bins=NUM_BINS, range=(0.0, amax))[0], amax


def test_percentile_threshold_matches_numpy() -> None:
    x = np.random.default_rng(0).normal(size=200_000)
    hist, amax = _hist(x)
    for pct in (99.0, 99.9, 99.99):
        assert percentile_threshold(hist, amax, pct) == pytest.approx(np.percentile(np.abs(x), pct), rel=0.01)


def test_entropy_clips_outliers_but_keeps_the_bulk() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=500_000), [60.0, -80.0]])  # two huge outliers
    hist, amax = _hist(x)
    t = entropy_threshold(hist, amax)
    assert 2.5 < t < 20.0  # far below the outliers, above the bulk of a unit Gaussian
    uniform = rng.uniform(-1, 1, 500_000)
    hist, amax = _hist(uniform)
    assert entropy_threshold(hist, amax) > 0.9 * amax  # nothing to clip in a uniform distribution


def test_coarse_to_fine_search_equals_exhaustive() -> None:
    rng = np.random.default_rng(2)
    for scale in (0.5, 1.0, 3.0):
        x = np.concatenate([rng.laplace(scale=scale, size=100_000), rng.normal(0, 10 * scale, 50)])
        hist, amax = _hist(x)
        h = hist.astype(np.float64)
        exhaustive = min(range(128, NUM_BINS + 1), key=lambda i: _kl_at(h, i, 128))
        kl_best = _kl_at(h, exhaustive, 128)
        found = round(entropy_threshold(hist, amax) * NUM_BINS / amax)
        assert _kl_at(h, found, 128) <= kl_best * 1.05 + 1e-9
