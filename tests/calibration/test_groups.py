"""Model parts of an exported graph (the INT8 sensitivity groups) and Q/DQ graphs kept to some nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from calibration.calibrate import CalibrationConfig
from calibration.frames import read_frames
from calibration.groups import group_nodes, group_of_scopes, node_scope
from calibration.qdq import int8_nodes, is_qdq_graph, restrict_int8
from export.int8_calibrate import calibrate_for_tensorrt


def test_groups_of_module_paths() -> None:
    stdc = [
        "backbone.features.0.bn",
        "backbone.features.1.relu",
        "backbone.features.2.avd_layer.1",
        "backbone.features.2.conv_list.0.bn",
        "backbone.features.3.conv_list.1.relu",
        "backbone.features.4.skip",
        "backbone.features.4.conv_list.0.bn",
        "backbone.features.5",
        "backbone.features.6.conv_list.3.bn",
    ]
    assert group_of_scopes(stdc) == ["backbone.res2"] * 2 + ["backbone.res3"] * 3 + ["backbone.res4"] * 4
    resnet = ["backbone.bn1", "backbone.layer1.0.conv1", "backbone.layer3.5.bn2", "backbone.layer4.2"]
    assert group_of_scopes(resnet) == ["backbone.res2", "backbone.res2", "backbone.res4", "backbone.res5"]
    rest = [
        "pixel_decoder.in_projections.3.bn",
        "pixel_decoder.conv_avg.relu",
        "pixel_decoder.csm.2.mlp.1",
        "pixel_decoder",
        "pixel_decoder.dcn.0.offset",
        "pixel_decoder.dcn.2",
        "pixel_decoder.out.bn",
        "predictor.input_proj.1",
        "predictor.cross_attention.0.feature_proj.bn",
        "predictor.self_attention.2.self_attn",
        "predictor.ffn.1.linear2",
        "predictor.ffn.12",
        "predictor.class_embed",
        "predictor.mask_embed.layers.0",
        "predictor",
        "",
    ]
    assert group_of_scopes(rest) == [
        "pixel_decoder.in_proj",
        "pixel_decoder.context",
        "pixel_decoder.context",
        "pixel_decoder.context",
        "pixel_decoder.up1",
        "pixel_decoder.up3",
        "pixel_decoder.out",
        "decoder.input_proj",
        "decoder.L0.pem_ca",
        "decoder.L2.self_attn",
        "decoder.L1.ffn",
        "decoder.L12.ffn",
        "heads",
        "heads",
        "heads",
        "postprocess",
    ]


def test_scope_from_dynamo_metadata_and_torchscript_names() -> None:
    dynamo = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="node_Conv_12")
    dynamo.metadata_props.add(
        key="pkg.torch.onnx.name_scopes",
        value="['', 'model', 'model.backbone', 'model.backbone.features.3', 'model.backbone.features.3.bn']",
    )
    assert node_scope(dynamo) == "backbone.features.3.bn"
    script = onnx.helper.make_node("MatMul", ["a", "b"], ["c"], name="/model/predictor/ffn.1/linear1/MatMul")
    assert node_scope(script) == "predictor.ffn.1.linear1"
    outside = onnx.helper.make_node("Cast", ["image"], ["f"], name="node__to_copy")
    assert node_scope(outside) == ""


def test_every_node_of_the_tiny_graph_has_a_part(semantic_onnx: Path) -> None:
    model = onnx.load(str(semantic_onnx))
    groups = group_nodes(model)
    named = [n.name for n in model.graph.node if n.op_type != "Constant"]
    assert sorted(n for names in groups.values() for n in names) == sorted(named)
    expected = {f"backbone.res{i}" for i in range(2, 6)}
    expected |= {f"pixel_decoder.{p}" for p in ("in_proj", "context", "up1", "up2", "up3", "out")}
    expected |= {f"decoder.L{i}.{p}" for i in range(3) for p in ("pem_ca", "self_attn", "ffn")}
    expected |= {"decoder.input_proj", "heads", "postprocess"}
    assert set(groups) == expected
    deform = [n.name for n in model.graph.node if n.op_type == "DeformConv"]
    assert [g for g, names in groups.items() if set(deform) & set(names)] == [
        "pixel_decoder.up1",
        "pixel_decoder.up2",
        "pixel_decoder.up3",
    ]


@pytest.fixture(scope="module")
def qdq(semantic_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    out = tmp_path_factory.mktemp("qdq") / "tiny.int8.onnx"
    config = CalibrationConfig("skimage", "max", 2, cache=out.with_suffix(".calib"), high_precision="fp32")
    calibrate_for_tensorrt(semantic_onnx, out, config)
    return onnx.load(str(out))


def test_restrict_int8_keeps_the_named_nodes_quantised(semantic_onnx: Path, qdq: onnx.ModelProto) -> None:
    groups = group_nodes(onnx.load(str(semantic_onnx)))
    quantised = set(int8_nodes(qdq))
    assert is_qdq_graph(qdq) and len(quantised) > 50
    part = quantised & set(groups["backbone.res3"])
    kept = restrict_int8(qdq, part)
    assert set(int8_nodes(kept)) == part and is_qdq_graph(kept)
    assert len(int8_nodes(qdq)) == len(quantised)  # the input graph is not modified
    onnx.checker.check_model(kept)
    none = restrict_int8(qdq, ())
    assert not is_qdq_graph(none)
    frames = read_frames("skimage", (64, 128), 2)
    sessions = [ort.InferenceSession(m.SerializeToString()) for m in (none, qdq)]
    want = ort.InferenceSession(str(semantic_onnx)).run(None, {"image": frames[:1]})[0]
    np.testing.assert_array_equal(sessions[0].run(None, {"image": frames[:1]})[0], want)  # no INT8 = FP32
    assert sessions[1].run(None, {"image": frames[:1]})[0].shape == want.shape
