"""kill -9 at named points of every command that writes (PEM_KILL_AT, pem_rt/killpoints.py: the process
SIGKILLs itself exactly there, no sleeps): the inputs keep their bytes, what existed before is intact (or,
for an engine, refused with the rebuild command, never a pair that verifies but does not belong), and the
next run succeeds and leaves no litter (temporary files, staging folders)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from pem_rt.errors import PemError
from tests.trust.demo_runs import SIZE, TRAIN, DemoRuns, Run, ok, pem

LITTER = ("*.tmp", ".*.staging", ".*.old")


def hashes(*roots: Path) -> dict[Path, str]:
    files = [p for r in roots for p in ([r] if r.is_file() else sorted(r.rglob("*"))) if p.is_file()]
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def litter(root: Path) -> list[Path]:
    return sorted(p for pattern in LITTER for p in root.rglob(pattern))


def intact(path: Path) -> None:
    """``path`` is a complete artefact of its kind (an engine: verifies, or is refused in one line)."""
    from calibration.cache import parse_cache
    from pem_rt.engine_meta import read_sidecar, verify_engine
    from pem_rt.onnx_props import read_props

    if path.suffix == ".onnx":
        assert read_props(path).get("pem.role"), path
    elif path.suffix == ".engine":
        try:
            verify_engine(path, read_sidecar(path))
        except PemError as e:
            assert "rebuild: pem build-engine" in str(e)
    elif path.suffix == ".calib":
        parse_cache(path.read_text())
    elif path.suffix in (".json", ".pbtxt"):
        json.loads(path.read_text()) if path.suffix == ".json" else path.read_text()


def killed(point: str, *args: str | Path) -> Run:
    run = pem(*args, env={"PEM_KILL_AT": point})
    assert run.code == -9, f"not killed at {point}:\n{run.output[-3000:]}"
    return run


def check_kill_matrix(
    tmp: Path, inputs: list[Path], args: list[str | Path], points: list[str], clean_first: bool = True
) -> None:
    """The matrix for one command: (a clean run,) a kill at each point, then a clean run."""
    if clean_first:
        ok(pem(*args))
    before = hashes(*inputs)
    existing = hashes(tmp)
    for point in points:
        killed(point, *args)
        assert hashes(*inputs) == before, f"an input changed (kill at {point})"
        for path, sha in existing.items():
            assert path.is_file(), f"{path} vanished (kill at {point})"
            if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                intact(path)
    ok(pem(*args))
    assert hashes(*inputs) == before
    assert litter(tmp) == [], litter(tmp)


def copy(src: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(src, folder / src.name))


def test_surgery(tiny_runs: DemoRuns, tmp_path: Path) -> None:
    ref = copy(tiny_runs.reference, tmp_path)
    check_kill_matrix(tmp_path, [ref], ["surgery", "--onnx", ref], ["before-rename:*.trt.onnx"])


def test_triton_repo(dynamic_semantic_onnx: Path, tmp_path: Path) -> None:
    ref = copy(dynamic_semantic_onnx, tmp_path / "model")  # Triton batches: a dynamic-batch export
    repo = tmp_path / "repo"
    args: list[str | Path] = ["triton-repo", ref, "--repo", repo, "--force", "--instance-kind", "cpu"]
    check_kill_matrix(tmp_path, [ref], args, ["triton-repo-staged:*", "triton-repo-swapping:*"])
    assert len(list(repo.glob("*/config.pbtxt"))) == 1


def test_calibrate(tiny_runs: DemoRuns, tmp_path: Path) -> None:
    ref = copy(tiny_runs.reference, tmp_path)
    args: list[str | Path] = ["calibrate", "--onnx", ref, "--calib-data", tiny_runs.calib,
                              "--calib-batches", "4", "--calib-cache", tmp_path / "m.calib"]  # fmt: skip
    # no clean run first: a reused cache would never reach the cache's write
    check_kill_matrix(
        tmp_path,
        [ref, tiny_runs.calib],
        args,
        ["before-rename:m.calib", "before-rename:*.int8.onnx"],
        clean_first=False,
    )


def test_build_engine_between_sidecar_and_engine(tiny_runs: DemoRuns, tmp_path: Path) -> None:
    """The finding: a kill between the two renames left a new FP32 engine beside the old FP16 sidecar and
    inspect said fp16, PASSED. Now the sidecar goes first: the old engine is refused by the new sidecar."""
    ref = copy(tiny_runs.reference, tmp_path)
    engine = tmp_path / "m.engine"
    common: list[str | Path] = ["--onnx", ref, "--target", "sm86", "--out", engine]
    ok(pem("build-engine", "--fp16", *common))
    killed("before-rename:m.engine", "build-engine", "--fp32", *common)
    run = pem("build-engine", "inspect", engine)
    assert run.code == 1 and run.stderr.count("\n") == 1 and "rebuild: pem build-engine --fp32" in run.stderr
    ok(pem("build-engine", "--fp32", *common))
    assert '"precision": "fp32"' in ok(pem("build-engine", "inspect", engine)).stdout
    assert litter(tmp_path) == []


@pytest.mark.slow
def test_build_engine(tiny_runs: DemoRuns, tmp_path: Path) -> None:
    ref = copy(tiny_runs.reference, tmp_path)
    args: list[str | Path] = [
        "build-engine",
        "--fp32",
        "--onnx",
        ref,
        "--target",
        "sm86",
        "--out",
        tmp_path / "m.engine",
    ]
    check_kill_matrix(tmp_path, [ref], args, ["before-rename:*.trt.onnx", "before-rename:m.engine.json",
                                              "before-rename:m.engine"])  # fmt: skip


@pytest.mark.slow
def test_export(tiny_runs: DemoRuns, tmp_path: Path) -> None:
    ckpt = copy(tiny_runs.run / "best.pt", tmp_path / "run")
    args: list[str | Path] = ["export", "--checkpoint", ckpt, "--size", SIZE, "--no-verify"]
    check_kill_matrix(tmp_path, [ckpt], args, ["before-rename:*.onnx"])


@pytest.mark.slow
def test_train(tiny_runs: DemoRuns, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args: list[str | Path] = ["train", *TRAIN, "--data", tiny_runs.data, "--out", out]
    check_kill_matrix(tmp_path, [tiny_runs.data], args, ["before-rename:last.pt"], clean_first=False)
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()


@pytest.mark.slow
def test_compare(tiny_runs: DemoRuns, tmp_path: Path) -> None:
    ckpt = copy(tiny_runs.run / "best.pt", tmp_path / "run")
    args: list[str | Path] = ["compare", "--checkpoint", ckpt, "--data", tiny_runs.data, "--size", SIZE,
                              "--max-frames", "2", "--backends", "onnx,int8", "--calib-methods", "percentile",
                              "--calib-batches", "4", "--calib-data", tiny_runs.calib,
                              "--out", tmp_path / "cmp"]  # fmt: skip
    check_kill_matrix(
        tmp_path, [ckpt, tiny_runs.data], args, ["before-rename:*.debug.onnx", "before-rename:report.json"]
    )
