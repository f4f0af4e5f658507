"""A demo-like runs folder in minutes: what `make demo` leaves under runs/demo (dataset, a trained tiny
model, its reference graph, the INT8 calibration, and `pem compare`'s scratch graphs), made with the real
commands at a small size, and a runner for `pem` commands in their own process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SIZE = "64x128"
TRAIN = ["--preset", "cityscapes-tiny", "--crop", SIZE, "--base-size", "64", "--batch-size", "2",
         "--iters", "2", "--points", "64", "--eval-every", "0", "--workers", "0", "--threads", "1",
         "--no-progress"]  # fmt: skip


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def pem(*args: str | Path, runs: Path | None = None, env: dict[str, str] | None = None, repo: Path = REPO,
        timeout: float = 900) -> Run:  # fmt: skip
    """``pem ARGS`` in a subprocess importing ``repo``'s code; ``runs`` is its PEM_RUNS."""
    full = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1", **(env or {})}
    if runs is not None:
        full["PEM_RUNS"] = str(runs)
    result = subprocess.run(
        [sys.executable, "-m", "pem_rt.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=full, cwd=repo,
    )  # fmt: skip
    return Run(result.returncode, result.stdout, result.stderr)


def ok(run: Run) -> Run:
    assert run.code == 0, run.output[-4000:]
    return run


@dataclass(frozen=True)
class DemoRuns:
    root: Path  # the runs root (PEM_RUNS)
    data: Path
    run: Path
    reference: Path
    compare: Path

    @property
    def calib(self) -> Path:
        return self.data / "leftImg8bit" / "train"


def make_demo_runs(root: Path, repo: Path = REPO, later_stages: bool = True) -> DemoRuns:
    """runs/demo as `make demo` lays it out: data/, run/ (best.pt, the reference graph, its INT8
    calibration) and compare/ (the debug export and its INT8 scratch graph, the newest files)."""
    demo = root / "demo"
    data, run, cmp = demo / "data", demo / "run", demo / "compare"
    ok(
        pem(
            "synthetic",
            "--out",
            data,
            "--train",
            "16",
            "--val",
            "4",
            "--size",
            SIZE,
            "--seed",
            "1",
            repo=repo,
        )
    )
    ok(pem("train", *TRAIN, "--data", data, "--out", run, repo=repo))
    ok(pem("export", "--checkpoint", run / "best.pt", "--size", SIZE, "--no-verify", repo=repo))
    reference = run / f"cityscapes-tiny_semantic_{SIZE}.onnx"
    calib = data / "leftImg8bit" / "train"
    if later_stages:  # what the demo runs after the export: calibration and the comparison
        ok(pem("calibrate", "--onnx", reference, "--calib-data", calib, "--calib-batches", "4", repo=repo))
        ok(pem("compare", "--checkpoint", run / "best.pt", "--data", data, "--size", SIZE,
               "--max-frames", "2", "--backends", "onnx,int8", "--calib-methods", "percentile",
               "--calib-batches", "4", "--calib-data", calib, "--out", cmp,
               repo=repo))  # fmt: skip
    return DemoRuns(root, data, run, reference, cmp)
