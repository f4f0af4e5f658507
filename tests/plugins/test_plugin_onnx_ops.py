"""The ONNX node form of the plugin ops (the contract graph surgery writes against)."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from plugins import onnx_ops


def attributes(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def test_deform_conv_node() -> None:
    node = onnx_ops.deform_conv_node(["x", "o", "m", "w"], "y", name="dcn0", stride=(2, 1), padding=1)
    assert (node.op_type, node.domain, node.name, list(node.input)) == (
        "ModulatedDeformConv2d",
        "pem",
        "dcn0",
        ["x", "o", "m", "w"],
    )
    assert attributes(node) == {
        "plugin_namespace": b"pem",
        "plugin_version": b"1",
        "stride": [2, 1],
        "padding": [1, 1],
        "dilation": [1, 1],
        "groups": 1,
        "deformable_groups": 1,
    }
    with pytest.raises(ValueError, match="optional bias"):
        onnx_ops.deform_conv_node(["x", "o", "m"], "y", name="bad")
    with pytest.raises(ValueError, match="stride must be an int or 2 ints"):
        onnx_ops.deform_conv_node(["x", "o", "m", "w"], "y", name="bad", stride=(1, 1, 1))


def test_prototype_selection_node_passes_the_onnx_checker() -> None:
    node = onnx_ops.prototype_selection_node(["f", "q", "m"], "p", name="ps0", heads=8)
    assert (node.op_type, node.domain) == ("PrototypeSelection", "pem")
    assert attributes(node) == {"plugin_namespace": b"pem", "plugin_version": b"1", "heads": 8}
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 8]) for n in ("f", "q", "m")]
    graph = helper.make_graph(
        [node], "g", inputs, [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 4, 8])]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), onnx_ops.opset_import()])
    onnx.checker.check_model(model, full_check=True)  # a custom-domain op is accepted
