"""The vectorised entropy range search (training/qat_ranges.py) against ModelOpt's own, on histograms
shaped like activations: exponential, ReLU with outliers (empty bins between), heavy-tailed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.qat_ranges import entropy_amax


def _histogram(kind: str, bins: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(bins)
    if kind == "exponential":
        x = rng.exponential(1.0, 50_000)
    elif kind == "relu-outliers":
        x = np.maximum(rng.normal(0.0, 1.0, 50_000), 0.0)
        x[:20] = 30.0
    else:
        x = np.abs(rng.standard_t(2, 20_000))
    hist, edges = np.histogram(x, bins=bins)
    return hist.astype(np.int32), edges


@pytest.mark.parametrize("kind", ["exponential", "relu-outliers", "heavy-tail"])
@pytest.mark.parametrize("unsigned", [False, True])
def test_entropy_amax_is_modelopts(kind: str, unsigned: bool) -> None:
    from modelopt.torch.quantization.calib.histogram import _compute_amax_entropy

    hist, edges = _histogram(kind, 400)
    want = _compute_amax_entropy(hist.copy(), edges, 8, unsigned)
    got = entropy_amax(hist, edges, 8, unsigned)
    assert torch.tensor(got, dtype=torch.float32).item() == want.item()
    assert edges[128] <= got <= edges[-1]


def test_entropy_amax_clips_an_outlier_tail() -> None:
    hist, edges = _histogram("relu-outliers", 2048)
    assert entropy_amax(hist, edges) < 0.5 * edges[-1]  # the 20 outliers at 30 are not worth the range
