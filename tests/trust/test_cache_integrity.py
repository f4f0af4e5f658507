"""Calibration caches with integrity: a cache cut at a line boundary, cut mid-line, or altered is said to
be damaged in one line and recomputed, never used (and never a traceback); older caches stay readable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from calibration.cache import CalibrationKey, read_cache, write_cache

KEY = CalibrationKey("a" * 64, (64, 128), "percentile", 99.99, 4, "b" * 64)
AMAX = {f"/decoder/layer{i}/Add_output_0": 1.5 + i for i in range(20)}


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return write_cache(tmp_path / "m.calib", KEY, AMAX)


def test_intact_cache_is_reused(cache: Path) -> None:
    scales = read_cache(cache, KEY)
    assert scales is not None and set(scales) == set(AMAX)
    assert cache.read_text().splitlines()[0].startswith("PEM-RT-calibration-2 ")
    assert '"role": "calibration-cache"' in cache.read_text().splitlines()[0]


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: "\n".join(t.splitlines()[:-5]) + "\n",  # cut at a line boundary (was silently accepted)
        lambda t: t[: len(t) // 2],  # cut mid-line (was a traceback)
        lambda t: _line(t, 3, lambda line: line[:-1] + ("0" if line[-1] != "0" else "1")),  # a scale altered
        lambda t: _line(t, 3, lambda line: line[:-2] + "zz"),  # not hex
        lambda t: t.splitlines()[0][:30],  # the header cut
    ],
    ids=["line-boundary", "mid-line", "altered", "not-hex", "header-cut"],
)
def test_damaged_cache_is_one_line_and_recomputed(
    cache: Path, damage: object, capsys: pytest.CaptureFixture[str]
) -> None:
    cache.write_text(damage(cache.read_text()))  # type: ignore[operator]
    assert read_cache(cache, KEY) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "calibrating again" in out and str(cache) in out


def _line(text: str, index: int, change: Callable[[str], str]) -> str:
    lines = text.splitlines()
    lines[index] = change(lines[index])
    return "\n".join(lines) + "\n"


def test_other_settings_are_not_damage(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = CalibrationKey("c" * 64, (64, 128), "percentile", 99.99, 4, "b" * 64)
    assert read_cache(cache, other) is None
    assert "model_sha256 differ" in capsys.readouterr().out


def test_older_cache_format_is_read(tmp_path: Path) -> None:
    path = tmp_path / "old.calib"
    path.write_text(f"PEM-RT-calibration-1 {KEY.to_json()}\nx: 3c23d70a\n")
    assert read_cache(path, KEY) == pytest.approx({"x": 0.01})
