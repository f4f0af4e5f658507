"""Training runs end to end through the CLI: bit-exact resume, kills during checkpoint writes, and
one-line errors for bad inputs. Each run is a real subprocess on the synthetic Cityscapes files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from training.model import build_model, get_preset
from training.run_log import read_metrics

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--preset", "cityscapes-tiny", "--crop", "64x128", "--base-size", "64", "--batch-size", "2",
    "--points", "256", "--workers", "0", "--threads", "1", "--no-progress",
]  # fmt: skip


def cli(script: str, *args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / script), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def popen(script: str, *args: str | Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(REPO / script), *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def train_args(root: Path, out: Path, *extra: str) -> list[str | Path]:
    return [*TINY, "--data", root, "--out", out, "--iters", "8", "--eval-every", "4", *extra]


def test_resume_continues_bit_for_bit(synthetic_root: Path, tmp_path: Path) -> None:
    """--stop-at 4 then --resume, and a SIGKILL mid-run then --resume, both give the uninterrupted
    run's losses (and weights) exactly."""
    a, b = tmp_path / "a", tmp_path / "b"
    ok(cli("training/train.py", *train_args(synthetic_root, a, "--checkpoint-every", "2")))
    first = ok(cli("training/train.py", *train_args(synthetic_root, b, "--stop-at", "4")))
    assert "stopped at step 4 of 8; continue with --resume" in first.stdout
    assert len(read_metrics(b / "metrics.csv")["loss"]) == 4
    second = ok(cli("training/train.py", *train_args(synthetic_root, b, "--resume")))
    assert "resumed from" in second.stdout and "at step 4" in second.stdout

    loss_a, loss_b = read_metrics(a / "metrics.csv")["loss"], read_metrics(b / "metrics.csv")["loss"]
    assert len(loss_a) == len(loss_b) == 8
    np.testing.assert_array_equal(loss_a, loss_b)
    assert len(set(loss_a.tolist())) == 8  # the losses really change from step to step
    wa, wb = load_checkpoint(a / "last.pt").model, load_checkpoint(b / "last.pt").model
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    for name in ("best.pt", "loss_curve.png", "eval/step_0000004.json", "eval/step_0000008.json"):
        assert (b / name).is_file(), name

    # A run SIGKILLed mid-training (checkpoint every step), ideally while writing last.pt, resumes from
    # last.pt to the same losses; the interrupted write's temporary file is cleaned up.
    c = tmp_path / "c"
    proc = popen("training/train.py", *train_args(synthetic_root, c, "--checkpoint-every", "1"))
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            rows = (c / "metrics.csv").read_text().count("\n") - 1 if (c / "metrics.csv").exists() else 0
            if rows >= 3 and any(c.glob(".last.pt.*.tmp")):
                break
            if rows >= 5:  # no write caught in flight: kill between writes instead
                break
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    killed_at = load_checkpoint(c / "last.pt").extra["step"]
    assert 1 <= killed_at < 8
    ok(cli("training/train.py", *train_args(synthetic_root, c, "--checkpoint-every", "1", "--resume")))
    assert not any(c.glob(".*.tmp"))
    np.testing.assert_array_equal(loss_a, read_metrics(c / "metrics.csv")["loss"])


SAVER = """
import sys, torch
from training.checkpoint import Checkpoint, save_checkpoint
from training.model import build_model, get_preset
cfg = get_preset("cityscapes-tiny")
state = build_model(cfg).state_dict()
pad = torch.randn(8_000_000)  # 32 MB: each write takes a while
step = 0
while True:
    step += 1
    save_checkpoint(sys.argv[1], Checkpoint(cfg, state, {"step": step, "pad": pad + step}))
"""


def test_kill_during_checkpoint_write_keeps_previous_loadable(tmp_path: Path) -> None:
    """SIGKILL a process while it writes a checkpoint: the file on disk is the previous complete one."""
    path = tmp_path / "last.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        killed_mid_write = False
        while time.monotonic() < deadline:
            if any(tmp_path.glob(".last.pt.*.tmp")) and path.exists():
                time.sleep(0.002)
                if any(tmp_path.glob(".last.pt.*.tmp")):
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_mid_write = True
                    break
            time.sleep(0.001)
    finally:
        proc.kill()
        proc.wait()
    assert killed_mid_write
    assert any(tmp_path.glob(".last.pt.*.tmp")), "the kill should have interrupted a write"
    ckpt = load_checkpoint(path)
    step = ckpt.extra["step"]
    assert step >= 1
    assert ckpt.extra["pad"].numel() == 8_000_000  # complete, not a truncated write
    assert set(ckpt.model) == set(build_model(get_preset("cityscapes-tiny")).state_dict())


def _one_error_line(result: subprocess.CompletedProcess[str], command: str, *words: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{command}: FAILED"
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_bad_dataset_roots_are_one_line_errors(tmp_path: Path) -> None:
    missing = cli("training/train.py", *TINY, "--data", tmp_path / "nope", "--out", tmp_path / "r")
    _one_error_line(missing, "train", "does not exist", "--data")
    (tmp_path / "empty").mkdir()
    wrong = cli("training/train.py", *TINY, "--data", tmp_path / "empty", "--out", tmp_path / "r")
    _one_error_line(wrong, "train", "leftImg8bit/train/<city>/*_leftImg8bit.png", "gtFine")
    ade = cli(
        "training/evaluate.py", "--predictions", tmp_path, "--dataset", "ade20k", "--data", tmp_path / "empty"
    )
    _one_error_line(ade, "evaluate", "images/validation", "annotations/validation")


def test_corrupt_checkpoint_is_one_line_error(synthetic_root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    evaluated = cli("training/evaluate.py", "--checkpoint", bad, "--data", synthetic_root)
    _one_error_line(evaluated, "evaluate", "corrupt", str(bad))
    resumed = cli("training/train.py", *TINY, "--data", synthetic_root, "--out", tmp_path, "--resume")
    _one_error_line(resumed, "train", "corrupt", str(bad))


def test_mismatched_class_counts_are_one_line_errors(synthetic_root: Path, tmp_path: Path) -> None:
    ade_ckpt = tmp_path / "ade.pt"
    cfg = get_preset("ade20k-tiny")
    save_checkpoint(ade_ckpt, Checkpoint(cfg, build_model(cfg).state_dict()))
    evaluated = cli(
        "training/evaluate.py", "--checkpoint", ade_ckpt, "--data", synthetic_root, "--dataset", "cityscapes"
    )
    _one_error_line(evaluated, "evaluate", "150 classes", "19")
    weights = cli(  # other classes fine-tune: the class head is re-initialised, the rest kept
        "training/train.py", *TINY, "--data", synthetic_root, "--out", tmp_path / "w", "--weights", ade_ckpt,
        "--iters", "1", "--val-split", "",
    )  # fmt: skip
    assert weights.returncode == 0, weights.stderr
    assert "150 classes -> 19 classes of cityscapes-tiny" in weights.stdout
    assert "re-initialised 2 tensors (" in weights.stdout
    preset = cli(
        "training/train.py", *TINY, "--preset", "ade20k-tiny", "--dataset", "cityscapes",
        "--data", synthetic_root, "--out", tmp_path / "p",
    )  # fmt: skip
    _one_error_line(preset, "train", "150", "19", "cityscapes-*")
