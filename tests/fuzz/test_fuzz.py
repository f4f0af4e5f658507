"""A short atheris run of every fuzz target (`make fuzz` runs each for 10^6 executions), and the inputs
fuzzing found that once escaped as something other than PemError."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS, run_one, seeds

REPO = Path(__file__).resolve().parents[2]
RUNS = {"checkpoint": 100, "checkpoint_content": 200}  # torch.save/load are the slow ones


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_short_fuzz_run(target: str, tmp_path: Path) -> None:
    runs = RUNS.get(target, 500)
    result = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", target, f"-runs={runs}", "-seed=1", "-rss_limit_mb=8192",
         f"-artifact_prefix={tmp_path}/", str(tmp_path / "corpus")],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Done {runs} runs" in result.stderr
    assert not list(tmp_path.glob("crash-*"))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_parse(target: str) -> None:
    for data in seeds(target):
        run_one(target, data)


@pytest.mark.parametrize(
    ("target", "data"),
    [
        ("sources_file", b"camera:0\n\xba\xff\n"),  # not UTF-8: was a UnicodeDecodeError
        ("sidecar", b"[1, 2]"),  # JSON that is not an object
        ("sidecar", b"[" * 100_000),  # nesting deeper than the JSON decoder's recursion limit
        ("calibration_cache", b'PEM-RT-calibration-2 {"key": {}, "entries": 1}\nx: zz\n'),
        ("onnx_metadata", b"\x72\x05\x0a\x03abc"),  # a metadata entry cut short
        ("annotations", b'{"images": [], "annotations": [{"file_name": 3}]}'),
    ],
)
def test_found_inputs_give_pem_error_only(target: str, data: bytes) -> None:
    run_one(target, data)


def test_checkpoint_config_found_inputs_give_pem_error_only() -> None:
    seed = json.loads(seeds("checkpoint_content")[0])
    seed["config"]["dataset"]["palette"][0] = [1e400, 0, 0]  # infinity: int() of it was an OverflowError
    run_one("checkpoint_content", json.dumps(seed).encode())
