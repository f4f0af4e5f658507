"""Defaults by role and lineage: reference graphs for build and calibrate, never comparison scratch,
an FP16/INT8/TensorRT graph or the newest file; ambiguity is one line listing the candidates; graphs
without lineage (older exports) still count by their name; the ONNX metadata reader equals onnx's."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from pem_rt.engine_meta import sha256_file
from pem_rt.errors import PemError
from pem_rt.lineage import (
    FP16,
    INT8,
    REFERENCE,
    SCRATCH,
    TENSORRT_GRAPH,
    Lineage,
    engines_of,
    pick_checkpoint,
    pick_engine,
    pick_reference,
    require_reference,
    stamp,
)
from pem_rt.onnx_props import read_props


def graph(path: Path, lineage: Lineage | None, extra: dict[str, str] | None = None) -> Path:
    g = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["labels"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 8, 8, 3])],
        [helper.make_tensor_value_info("labels", TensorProto.UINT8, [1, 8, 8, 3])],
    )
    model = helper.make_model(g)
    for k, v in (extra or {"pem.name": "m"}).items():
        model.metadata_props.add(key=k, value=v)
    if lineage is not None:
        stamp(model, lineage)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("PEM_RUNS", str(root))
    return root


def test_props_reader_equals_onnx(tmp_path: Path) -> None:
    props = {"pem.name": "m", "pem.classes": json.dumps(["a", "b"]), "unicode": "été"}
    path = graph(tmp_path / "m.onnx", Lineage(REFERENCE, "ab" * 32), props)
    want = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert read_props(path) == want and want["pem.role"] == REFERENCE


def test_demo_layout_picks_the_reference_not_the_newest_scratch(runs: Path) -> None:
    """The finding: after `make demo`, compare's INT8 scratch graph was the newest .onnx under runs/."""
    ref = graph(runs / "demo/run/m_semantic_64x128.onnx", Lineage(REFERENCE, "c" * 64))
    sha = sha256_file(ref)
    graph(runs / "demo/run/m_semantic_64x128.int8.onnx", Lineage(INT8, sha, sha))
    graph(runs / "demo/run/m_semantic_64x128.fp16.onnx", Lineage(FP16, sha, sha))
    graph(runs / "demo/run/m_semantic_64x128.fp16.trt.onnx", Lineage(TENSORRT_GRAPH, "d" * 64, sha))
    time.sleep(0)  # mtimes below are set explicitly, not waited for
    for name in ("m_semantic_64x128.debug.onnx", "m_semantic_64x128.debug.int8-percentile.onnx"):
        newest = graph(runs / "demo/compare" / name, Lineage(SCRATCH))
        os.utime(newest, (time.time() + 100, time.time() + 100))
    said: list[str] = []
    assert pick_reference("--onnx", said.append) == ref
    assert "using reference graph" in said[0] and "role 'reference'" in said[0] and "--onnx" in said[0]


def test_two_references_are_one_line_listing_both(runs: Path) -> None:
    a = graph(runs / "a/m.onnx", Lineage(REFERENCE))
    b = graph(runs / "b/m.onnx", Lineage(REFERENCE))
    with pytest.raises(PemError) as e:
        pick_reference()
    assert str(a) in str(e.value) and str(b) in str(e.value) and "--onnx" in str(e.value)
    assert "\n" not in str(e.value)


def test_the_reference_of_the_current_checkpoint_wins(runs: Path) -> None:
    ckpt = runs / "tiny" / "best.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights v2")
    current = graph(runs / "tiny/m_512.onnx", Lineage(REFERENCE, sha256_file(ckpt)))
    graph(runs / "tiny/m_256.onnx", Lineage(REFERENCE, "0" * 64))  # from the checkpoint before retraining
    said: list[str] = []
    assert pick_reference("--onnx", said.append) == current
    assert "checkpoint beside it" in said[0]


def test_none_names_the_command(runs: Path) -> None:
    graph(runs / "c/x.debug.onnx", Lineage(SCRATCH))
    with pytest.raises(PemError, match="pem export"):
        pick_reference()


def test_older_graphs_without_lineage_count_by_name(runs: Path) -> None:
    ref = graph(runs / "r/m_semantic_64x128.onnx", None)
    for name in ("m_semantic_64x128.fp16.onnx", "m_semantic_64x128.int8.onnx", "m_semantic_64x128.trt.onnx"):
        graph(runs / "r" / name, None)
    graph(runs / "compare/m.debug.int8-percentile.onnx", None)
    said: list[str] = []
    assert pick_reference("--onnx", said.append) == ref
    assert "no lineage" in said[0]


def test_explicit_non_reference_is_refused(tmp_path: Path) -> None:
    int8 = graph(tmp_path / "weird_name.onnx", Lineage(INT8, "1" * 64, "1" * 64))
    with pytest.raises(PemError, match="int8 graph, not a reference"):
        require_reference(int8)
    require_reference(graph(tmp_path / "ok.onnx", Lineage(REFERENCE)))
    require_reference(graph(tmp_path / "old.onnx", None))


def test_engines_of_the_reference_by_sha(runs: Path) -> None:
    ref = graph(runs / "r/m.onnx", Lineage(REFERENCE))
    sha = sha256_file(ref)
    for precision, onnx_sha in (("fp16", sha), ("int8", sha), ("fp32", "9" * 64)):
        engine = runs / "r" / f"m.{precision}.sm86.rtx1.7.engine"
        engine.write_bytes(precision.encode())
        engine.with_name(engine.name + ".json").write_text(json.dumps(_sidecar(precision, onnx_sha, engine)))
    found = engines_of(ref)
    assert [e.name for e in found] == ["m.fp16.sm86.rtx1.7.engine", "m.int8.sm86.rtx1.7.engine"]
    said: list[str] = []
    assert pick_engine(ref, found, said.append) == found[0]
    assert "made from the reference graph" in said[0] and "fp16" in said[0]


def test_checkpoint_pick(runs: Path) -> None:
    with pytest.raises(PemError, match="pem train"):
        pick_checkpoint()
    (runs / "a").mkdir()
    (runs / "a" / "last.pt").write_bytes(b"x")
    (runs / "a" / "best.pt").write_bytes(b"x")
    assert pick_checkpoint(log=lambda s: None) == runs / "a" / "best.pt"
    (runs / "b").mkdir()
    (runs / "b" / "last.pt").write_bytes(b"x")
    with pytest.raises(PemError, match="2 training runs"):
        pick_checkpoint()


def _sidecar(precision: str, onnx_sha: str, engine: Path) -> dict[str, object]:
    from tests.fuzz.targets import seeds

    d = json.loads(seeds("sidecar")[0])
    d.update(precision=precision, onnx_sha256=onnx_sha, engine_size=engine.stat().st_size,
             engine_sha256=sha256_file(engine))  # fmt: skip
    return d
