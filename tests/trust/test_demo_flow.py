"""After `make demo`, the README's commands in order (`build_engine.py --fp16`, `--int8`, `calibrate`,
`stream.py`) pick the demo's reference graph or its engines, say so, and succeed; no input they were given
or picked changes; every artefact is readable by others (mode 0644 under umask 022)."""

from __future__ import annotations

import hashlib
import os

import pytest

from pem_rt.engine_meta import read_sidecar, sha256_file
from pem_rt.onnx_props import read_props
from tests.trust.demo_runs import DemoRuns, ok, pem


@pytest.mark.slow
def test_readme_commands_after_the_demo(demo_runs: DemoRuns) -> None:
    old_mask = os.umask(0o022)  # the commands inherit it
    try:
        _readme_commands(demo_runs)
    finally:
        os.umask(old_mask)


def _readme_commands(demo_runs: DemoRuns) -> None:
    root, ref = demo_runs.root, demo_runs.reference
    sha = sha256_file(ref)
    given = [ref, *(f for f in demo_runs.calib.rglob("*") if f.is_file())]
    inputs = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in given}
    picked = f"using reference graph {ref}"

    fp16 = ok(pem("build-engine", "--fp16", "--target", "sm86", runs=root))
    assert picked in fp16.stdout
    engine = next(ref.parent.glob("*.fp16.sm86.*.engine"))
    side = read_sidecar(engine)
    assert side.precision == "fp16" and side.onnx_sha256 == sha
    dtypes = {t for layer in side.layers for t in str(layer["dtypes"]).replace(",", " ").split()}
    assert "int8" not in dtypes and "float16" in dtypes, dtypes  # an FP16 engine: no INT8 layers
    assert [t.name for t in side.outputs] == ["labels"]  # the deployable graph, not a debug export

    int8 = ok(pem("build-engine", "--int8", "--calib-data", demo_runs.calib, "--calib-batches", "4",
                  "--target", "sm86", runs=root))  # fmt: skip
    assert picked in int8.stdout
    assert read_sidecar(next(ref.parent.glob("*.int8.sm86.*.engine"))).onnx_sha256 == sha

    cal = ok(pem("calibrate", "--calib-data", demo_runs.calib, "--calib-batches", "4", runs=root))
    assert picked in cal.stdout
    assert read_props(ref.with_suffix(".int8.onnx"))["pem.reference_sha256"] == sha

    stream = ok(pem("stream", "--source", "synthetic:64x128", "--headless", "--frames", "3", runs=root))
    assert picked in stream.stdout and "using ONNX Runtime on the reference graph" in stream.stdout

    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs} == inputs
    for p in ref.parent.iterdir():
        if p.is_file() and p.suffix in (".onnx", ".engine", ".json", ".calib") and p != ref:
            assert p.stat().st_mode & 0o777 == 0o644, p
