"""The Q/DQ graph of a QAT model (TorchScript exporter + DeformConv symbolic): ONNX Runtime runs it, graph
surgery finds both plugin patterns, TensorRT-RTX builds it into an INT8 engine without calibration; and
(slow) `pem train --qat` -> `pem export` -> `pem build-engine --int8` -> `pem compare` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from calibration.qdq import int8_nodes
from export.build_engine import main as build_main
from export.compare import main as compare_main
from export.deploy_model import DeployModel
from export.export_onnx import main as export_main
from export.export_onnx import model_meta
from export.qat_export import QAT_OPSET, export_qdq_onnx
from export.surgery import to_tensorrt_graph
from pem_rt.engine_meta import read_sidecar
from pem_rt.lineage import INT8, lineage_of
from pem_rt.onnx_props import read_props
from tests.conftest import MODEL_SIZE, TrainedTiny
from training.model import build_model, get_preset
from training.qat import QatConfig, quantize_for_training


@pytest.fixture(scope="module")
def qat_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    torch.manual_seed(0)
    model = build_model(get_preset("cityscapes-tiny")).eval()
    frames = np.random.default_rng(0).integers(0, 256, (2, *MODEL_SIZE, 3), dtype=np.uint8)
    quantize_for_training(model, QatConfig("max"), [f[..., ::-1].copy() for f in frames])
    path = tmp_path_factory.mktemp("qat") / "qat.int8.onnx"
    export_qdq_onnx(model, path, model_meta(model, "semantic", MODEL_SIZE, 1, QAT_OPSET, "exact"), "ab" * 32)
    with torch.no_grad():
        want = DeployModel(model, "semantic")(torch.from_numpy(frames))[0].numpy()
    return path, want


def test_qat_graph_runs_and_has_both_plugin_patterns(qat_onnx: tuple[Path, np.ndarray]) -> None:
    path, want = qat_onnx
    model = onnx.load(str(path))
    assert len(int8_nodes(model)) > 40 and sum(n.op_type == "DeformConv" for n in model.graph.node) == 3
    assert not any(n.op_type == "Constant" for n in model.graph.node)
    props = read_props(path)
    assert props["pem.int8_source"] == "qat" and props["pem.name"] == "cityscapes-tiny"
    lineage = lineage_of(model, str(path))
    assert lineage is not None and lineage.role == INT8 and lineage.parent_sha256 == "ab" * 32
    session = ort.InferenceSession(str(path))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, *MODEL_SIZE, 3), dtype=np.uint8)
    got = np.concatenate([session.run(None, {"image": f[None]})[0] for f in frames])
    assert got.shape == want.shape and (got == want).mean() > 0.98  # INT8 in ORT vs fake quantisation
    trt_model, dcn, selections = to_tensorrt_graph(model, str(path))
    assert (dcn, selections) == (3, 3)
    assert sum(n.domain == "pem" for n in trt_model.graph.node) == 6


def test_build_engine_takes_the_qat_graph_without_calibration(
    qat_onnx: tuple[Path, np.ndarray],
    plugin_library: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "qat.int8.onnx"
    path.write_bytes(qat_onnx[0].read_bytes())
    common = ["--onnx", str(path), "--target", "sm86", "--plugins", str(plugin_library)]
    assert build_main(["--fp16", *common]) == 1
    assert "is a Q/DQ INT8 graph (`pem train --qat`); build it with --int8" in capsys.readouterr().err
    assert build_main(["--int8", *common]) == 0
    out = capsys.readouterr().out
    assert "building it without calibration" in out and "calibrating" not in out
    engine = next(tmp_path.glob("qat.int8.int8.sm86.rtx*.engine"))
    sidecar = read_sidecar(engine)
    assert sidecar.precision == "int8" and [layer["type"] for layer in sidecar.layers].count("PLUGIN_V3") == 6
    assert sum("int8" in layer["dtypes"] for layer in sidecar.layers) > 40
    assert sidecar.int8_excluded_groups == () and sidecar.int8_budget is None


@pytest.mark.slow
def test_qat_end_to_end(
    trained_tiny: TrainedTiny, plugin_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.train import main as train_main

    run = tmp_path / "qat"
    train = str(trained_tiny.data / "leftImg8bit/train")
    assert train_main([
        "--qat", "--weights", str(trained_tiny.run / "best.pt"), "--preset", "cityscapes-tiny",
        "--data", str(trained_tiny.data), "--crop", "64x128", "--base-size", "64", "--batch-size", "4",
        "--iters", "20", "--lr", "1e-4", "--points", "256", "--eval-every", "0", "--eval-limit", "4",
        "--workers", "0", "--threads", "1", "--no-progress", "--calib-data", train, "--calib-batches", "4",
        "--calib-method", "percentile", "--out", str(run),
    ]) == 0  # fmt: skip
    assert "QAT: " in capsys.readouterr().out
    graph = tmp_path / "qat.int8.onnx"
    assert export_main(["--checkpoint", str(run / "last.pt"), "--size", "64x128", "--out", str(graph)]) == 0
    assert (
        build_main(["--int8", "--onnx", str(graph), "--target", "sm86", "--plugins", str(plugin_library)])
        == 0
    )
    capsys.readouterr()
    report = tmp_path / "compare"
    assert compare_main([
        "--checkpoint", str(trained_tiny.run / "best.pt"), "--data", str(trained_tiny.data),
        "--size", "64x128", "--backends", "onnx,int8,int8-budget,int8-qat",
        "--qat-checkpoint", str(run / "last.pt"), "--max-frames", "4", "--calib-batches", "4",
        "--int8-budget", "100", "--out", str(report),
    ]) == 0  # fmt: skip
    table = capsys.readouterr().out
    backends = json.loads((report / "report.json").read_text())["backends"]
    assert set(backends) == {"onnx", "int8-percentile", "int8-budget", "int8-qat"}
    assert "int8-qat" in table and "int8-budget: model parts kept out of INT8: none" in table
