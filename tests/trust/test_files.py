"""Atomic writes: modes follow the umask, a kill before the rename leaves the old file (and a temp file
that the next write removes), and the kill hook lands exactly where it is named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pem_rt.files import atomic_write_text, remove_stale_temps

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_modes_follow_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    old = os.umask(mask)
    try:
        path = atomic_write_text(tmp_path / "a.json", "{}\n")
        assert path.stat().st_mode & 0o777 == mode
        atomic_write_text(path, "{} \n")  # a rewrite too
        assert path.stat().st_mode & 0o777 == mode
    finally:
        os.umask(old)


def _write_killed(path: Path, text: str, point: str) -> int:
    code = f"from pem_rt.files import atomic_write_text; atomic_write_text({str(path)!r}, {text!r})"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PEM_KILL_AT": point}
    return subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode


def test_kill_before_rename_keeps_the_old_file_and_the_next_write_cleans_up(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "model.calib", "old\n")
    assert _write_killed(path, "new\n", "before-rename:model.calib") == -9
    assert path.read_text() == "old\n"
    litter = list(tmp_path.glob(".model.calib.*.tmp"))
    assert len(litter) == 1 and litter[0].read_text() == "new\n"  # the killed write's complete temp file
    atomic_write_text(path, "newer\n")
    assert path.read_text() == "newer\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.calib"]


def test_kill_after_rename_has_the_new_file(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "x.json", "old\n")
    assert _write_killed(path, "new\n", "after-rename:x.json") == -9
    assert path.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_unnamed_points_do_not_kill(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    assert _write_killed(path, "new\n", "before-rename:other.json") == 0
    assert path.read_text() == "new\n"


def test_stale_temps_of_dead_processes_only(tmp_path: Path) -> None:
    target = tmp_path / "m.engine"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".m.engine.{dead_pid}-abcd_123.tmp"
    legacy = tmp_path / ".m.engine.k2j4h5g6.tmp"  # written before temp names carried the process id
    live = tmp_path / f".m.engine.{os.getppid()}-zzzzzzzz.tmp"  # a writer that still runs
    other = tmp_path / ".other.engine.k2j4h5g6.tmp"
    for p in (stale, legacy, live, other):
        p.write_bytes(b"x")
    assert sorted(remove_stale_temps(target)) == sorted([stale, legacy])
    assert live.exists() and other.exists()
