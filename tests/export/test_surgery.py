"""Graph surgery: plugin nodes found by pattern, counts checked, wiring equal to the reference graph."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.surgery import to_tensorrt_graph
from pem_rt.errors import PemError

from .lower_plugins import lower_plugins
from .test_export_onnx import frames, relative_error, run_onnx

Exported = Callable[..., tuple[object, Path]]


@pytest.mark.parametrize("preset", ["cityscapes-r50", "cityscapes-tiny"])
def test_counts_and_no_leftovers(exported: Exported, preset: str) -> None:
    _, path = exported(preset)
    reference = onnx.load(str(path))
    trt, dcn, sel = to_tensorrt_graph(reference, str(path))
    layers = 6 if preset == "cityscapes-r50" else 3
    assert (dcn, sel) == (3, layers)
    ops = Counter(n.op_type for n in trt.graph.node)
    assert ops["ModulatedDeformConv2d"] == 3 and ops["PrototypeSelection"] == layers
    assert ops["DeformConv"] == 0 and ops["Where"] == 0 and ops["Less"] == 0 and ops["GatherElements"] == 0
    assert ops["ArgMax"] == 1  # only the label map's argmax over classes remains
    assert {p.key: p.value for p in trt.metadata_props} == {p.key: p.value for p in reference.metadata_props}
    onnx.checker.check_model(trt)
    plugin = next(n for n in trt.graph.node if n.op_type == "PrototypeSelection")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in plugin.attribute}
    assert plugin.domain == "pem" and attrs["heads"] == (8 if preset == "cityscapes-r50" else 4)
    assert attrs["plugin_namespace"] == b"pem" and attrs["plugin_version"] == b"1"


def test_plugin_wiring_equals_reference_graph(exported: Exported) -> None:
    """Lowering the plugin nodes back to standard ops reproduces the reference graph's outputs."""
    _, path = exported("cityscapes-tiny")
    trt, _, _ = to_tensorrt_graph(onnx.load(str(path)), str(path))
    lowered = lower_plugins(trt)
    image = frames(1, (64, 128), seed=7)
    session = ort.InferenceSession(lowered.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"image": image}), strict=True))
    want = run_onnx(path, image)
    assert np.array_equal(got["labels"], want["labels"])
    assert relative_error(got["mask_logits"], want["mask_logits"]) <= 1e-5


def test_lowering_detects_wrong_wiring(exported: Exported) -> None:
    """The wiring check can fail: a wrong head count changes the outputs."""
    _, path = exported("cityscapes-tiny")
    trt, _, _ = to_tensorrt_graph(onnx.load(str(path)), str(path))
    node = next(n for n in trt.graph.node if n.op_type == "PrototypeSelection")
    for a in node.attribute:
        if a.name == "heads":
            a.i = 1
    got = ort.InferenceSession(lower_plugins(trt).SerializeToString()).run(
        None, {"image": frames(1, (64, 128))}
    )
    want = run_onnx(path, frames(1, (64, 128)))
    assert relative_error(got[2], want["mask_logits"]) > 1e-3


def test_masked_attention_ablation_has_no_prototype_selection(exported: Exported) -> None:
    _, path = exported("cityscapes-tiny", cross_attention="masked")
    _trt, dcn, sel = to_tensorrt_graph(onnx.load(str(path)), str(path))
    assert (dcn, sel) == (3, 0)


def test_count_mismatch_fails_clearly(exported: Exported) -> None:
    _, path = exported("cityscapes-tiny")
    model = onnx.load(str(path))
    for p in model.metadata_props:
        if p.key == "pem.decoder_layers":
            p.value = "4"
    with pytest.raises(PemError, match="found 3 prototype-selection subgraphs, expected 4"):
        to_tensorrt_graph(model, str(path))


def test_graph_without_metadata_fails_clearly(exported: Exported) -> None:
    _, path = exported("cityscapes-tiny")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    with pytest.raises(PemError, match="has no PEM-RT metadata"):
        to_tensorrt_graph(model, str(path))


def test_cli_writes_trt_graph(exported: Exported, tmp_path: Path) -> None:
    _, path = exported("cityscapes-tiny")
    src = tmp_path / "m.onnx"
    src.write_bytes(path.read_bytes())
    run = subprocess.run(
        [sys.executable, "export/surgery.py", "--onnx", str(src)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "replaced 3 DeformConv -> ModulatedDeformConv2d and 3 prototype selections" in run.stdout
    assert (tmp_path / "m.trt.onnx").is_file()
    again = subprocess.run(
        [sys.executable, "export/surgery.py", "--onnx", str(tmp_path / "m.trt.onnx")],
        capture_output=True,
        text=True,
        check=False,
    )
    # a graph that already went through surgery is refused in one line by its recorded role
    assert again.returncode == 1 and "not a reference graph" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert again.stderr.count("\n") == 1
