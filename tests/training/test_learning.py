"""Acceptance: a tiny PEM trained on CPU for a few minutes learns the synthetic scenes.

The same commands make the demo's training step (README, "Train and evaluate"). Measured on the 2-core
development machine: about 1.5 minutes for 250 steps, val mIoU 0.81.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from training.data.synthetic import write_dataset
from training.run_log import read_metrics, smoothed_bins

REPO = Path(__file__).resolve().parents[2]
RECIPE = [
    "--preset", "cityscapes-tiny", "--crop", "64x128", "--base-size", "64", "--batch-size", "8",
    "--iters", "250", "--lr", "2e-3", "--warmup-iters", "20", "--points", "512", "--eval-every", "0",
    "--workers", "1", "--threads", "1", "--no-progress",
]  # fmt: skip


def test_tiny_model_learns_synthetic_scenes(tmp_path: Path) -> None:
    data, run = tmp_path / "synthetic", tmp_path / "run"
    write_dataset(data, train=48, val=16, size=(64, 128), seed=1)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "training/train.py"), *RECIPE, "--data", str(data), "--out", str(run)],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    miou = summary["final"]["mIoU"]
    print(f"synthetic val mIoU {miou:.4f} after {summary['steps']} steps in {summary['seconds']:.0f} s")
    assert miou >= 0.7, result.stdout[-2000:]
    bins = smoothed_bins(read_metrics(run / "metrics.csv")["loss"])
    assert len(bins) == 10 and bool(np.all(np.diff(bins) < 0)), bins  # smoothed loss falls monotonically
    assert summary["loss_monotonic"] is True
    assert (run / "loss_curve.png").stat().st_size > 10_000 and (run / "best.pt").is_file()
