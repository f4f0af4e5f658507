"""Training works: a tiny PEM trained on CPU for a few minutes learns the synthetic scenes.

The recipe (tests/conftest.py TINY_RECIPE) is the demo's training step (README, "Train and evaluate").
Measured on the 2-core development machine: about 2 minutes for 250 steps at 128x256, val mIoU 0.74.
"""

from __future__ import annotations

import json

import numpy as np

from tests.conftest import TrainedTiny
from training.run_log import read_metrics, smoothed_bins


def test_tiny_model_learns_synthetic_scenes(trained_tiny: TrainedTiny) -> None:
    run = trained_tiny.run
    summary = json.loads((run / "summary.json").read_text())
    miou = summary["final"]["mIoU"]
    print(f"synthetic val mIoU {miou:.4f} after {summary['steps']} steps in {summary['seconds']:.0f} s")
    assert miou >= 0.7, trained_tiny.log[-2000:]
    bins = smoothed_bins(read_metrics(run / "metrics.csv")["loss"])
    assert len(bins) == 5 and bool(np.all(np.diff(bins) < 0)), bins  # smoothed loss falls monotonically
    assert summary["loss_monotonic"] is True
    assert (run / "loss_curve.png").stat().st_size > 10_000 and (run / "best.pt").is_file()
