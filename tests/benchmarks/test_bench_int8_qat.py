"""(slow) benchmarks/bench_int8_qat.py end to end on a few images and steps: every stage runs, the report
names every backend and the verdict is the one its distances give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_int8_qat_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/bench_int8_qat.py"), "--out", str(tmp_path),
         "--train-images", "16", "--val-images", "4", "--size", "64x128", "--iters", "20",
         "--qat-iters", "5", "--frames", "4", "--calib-methods", "max", "--qat-init", "entropy",
         "--budget", "100"],
        capture_output=True, text=True, timeout=1800, env=env,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stdout[-4000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "int8_qat-entropy.json").read_text())
    dist = report["distance_from_fp32_points"]
    assert set(dist) == {"int8-max", "int8-entropy", "int8-budget", "int8-qat"}
    closer = dist["int8-qat"] < dist["int8-entropy"]
    assert report["qat_closer_than_its_ptq"] is closer and result.returncode == (0 if closer else 1)
    assert f"int8_qat: {'PASSED' if closer else 'FAILED'}" in result.stdout
    assert (tmp_path / "compare-entropy" / "report.png").is_file()
