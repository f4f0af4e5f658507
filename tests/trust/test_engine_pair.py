"""An engine and its sidecar are one unit: the sidecar's size and SHA-256 must match the engine, else the
runtime and `inspect` refuse the pair with the rebuild command (what a kill between the two renames, or a
replaced file, leaves). The ONNX Runtime fallback of an engine is its reference graph, never the FP16 one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pem_rt.engine_meta import read_sidecar, sha256_file, verify_engine
from pem_rt.errors import PemError
from tests.trust.test_lineage import graph


def pair(folder: Path, name: str = "m.fp16.sm86.rtx1.7.engine", onnx_sha: str = "1" * 64) -> Path:
    from tests.fuzz.targets import seeds

    engine = folder / name
    engine.write_bytes(b"serialized engine " * 100)
    d = json.loads(seeds("sidecar")[0])
    d.update(engine_size=engine.stat().st_size, engine_sha256=sha256_file(engine), onnx_sha256=onnx_sha)
    d["build_command"] = "pem build-engine --fp16 --onnx m.onnx --target sm86"
    Path(f"{engine}.json").write_text(json.dumps(d))
    return engine


def test_matching_pair_verifies(tmp_path: Path) -> None:
    engine = pair(tmp_path)
    assert verify_engine(engine, read_sidecar(engine)) is True


@pytest.mark.parametrize("change", ["replaced", "truncated"])
def test_mismatched_pair_is_refused_with_the_rebuild_command(tmp_path: Path, change: str) -> None:
    engine = pair(tmp_path)
    data = engine.read_bytes()
    engine.write_bytes(data[:-10] if change == "truncated" else data.replace(b"engine", b"ENGINE"))
    with pytest.raises(PemError) as e:
        verify_engine(engine, read_sidecar(engine))
    assert "pem build-engine --fp16 --onnx m.onnx --target sm86" in str(e.value) and "\n" not in str(e.value)


def test_runtime_and_inspect_refuse_the_mismatched_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from export.build_engine import main
    from runtime.backends.tensorrt_backend import TensorRTBackend

    engine = pair(tmp_path)
    engine.write_bytes(b"an FP32 engine from a build killed between its two renames")
    with pytest.raises(PemError, match="not the one its sidecar"):
        TensorRTBackend(engine)  # refused before TensorRT or a GPU is even looked for
    assert main(["inspect", str(engine)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: engine") and err.count("\n") == 1 and "rebuild: pem build-engine" in err


def test_old_sidecars_without_hashes_stay_readable(tmp_path: Path) -> None:
    engine = pair(tmp_path)
    side = Path(f"{engine}.json")
    d = json.loads(side.read_text())
    for key in ("engine_size", "engine_sha256", "role", "parent_sha256"):
        d.pop(key)
    side.write_text(json.dumps(d))
    assert verify_engine(engine, read_sidecar(engine)) is False


def test_fallback_graph_is_the_reference_not_the_fp16_beside_it(tmp_path: Path) -> None:
    """The finding: on a machine without a GPU the stream fell back to m.fp16.onnx (ORT type error)."""
    from pem_rt.lineage import FP16, REFERENCE, Lineage
    from runtime.backends.tensorrt_backend import sibling_onnx

    ref = graph(tmp_path / "m.onnx", Lineage(REFERENCE))
    sha = sha256_file(ref)
    graph(tmp_path / "m.fp16.onnx", Lineage(FP16, sha, sha))
    engine = pair(tmp_path, "m.fp16.sm86.rtx1.7.engine", sha)
    assert sibling_onnx(engine, sha) == ref
    assert sibling_onnx(engine, "f" * 64) is None  # not the graph it was built from: no silent substitute
