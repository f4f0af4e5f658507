"""Lower our plugin nodes back to standard ONNX ops, written independently of the exporter, so a
TensorRT graph can run in ONNX Runtime and be compared with the reference graph (checks the wiring
surgery produced: input order, attributes, head count)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _lower_deform_conv(node: onnx.NodeProto) -> list[onnx.NodeProto]:
    a = _attrs(node)
    x, offset, mask, weight = node.input[:4]
    bias = node.input[4] if len(node.input) > 4 else ""
    pad = list(a["padding"])  # type: ignore[arg-type]
    return [
        helper.make_node(
            "DeformConv",
            [x, weight, offset, bias, mask],
            list(node.output),
            name=f"{node.name}_lowered",
            strides=list(a["stride"]),
            pads=pad + pad,
            dilations=list(a["dilation"]),  # type: ignore[arg-type]
            group=int(a["groups"]),
            offset_group=int(a["deformable_groups"]),  # type: ignore[arg-type]
        )
    ]


def _lower_prototype_selection(
    node: onnx.NodeProto, shapes: dict[str, list[int]], types: dict[str, int]
) -> list[onnx.NodeProto]:
    """features [B,N,C], queries [B,Q,C], mask [B,Q,N] -> [B,Q,C], masking rules of the PEM reference."""
    heads = int(_attrs(node)["heads"])  # type: ignore[call-overload]
    f, q, m = node.input
    b, n, c = shapes[f]
    nq = shapes[q][1]
    d = c // heads
    p = f"{node.name}_"
    dtype = helper.tensor_dtype_to_np_dtype(types[f])
    return [
        _const(p + "fshape", np.array([b, n, heads, d], np.int64)),
        _const(p + "qshape", np.array([b, nq, heads, d], np.int64)),
        _const(p + "zero", np.array(0.0, dtype)),
        _const(p + "ninf", np.array(-np.inf, dtype)),
        _const(p + "oshape", np.array([b, nq, c], np.int64)),
        helper.make_node("Reshape", [f, p + "fshape"], [p + "f4"]),
        helper.make_node("Transpose", [p + "f4"], [p + "fh"], perm=[0, 2, 1, 3]),  # [B,h,N,D]
        helper.make_node("Transpose", [p + "f4"], [p + "fT"], perm=[0, 2, 3, 1]),  # [B,h,D,N]
        helper.make_node("Reshape", [q, p + "qshape"], [p + "q4"]),
        helper.make_node("Transpose", [p + "q4"], [p + "qh"], perm=[0, 2, 1, 3]),  # [B,h,Q,D]
        helper.make_node("MatMul", [p + "qh", p + "fT"], [p + "sim"]),  # [B,h,Q,N]
        helper.make_node("Less", [m, p + "zero"], [p + "masked"]),  # [B,Q,N]
        helper.make_node("Cast", [p + "masked"], [p + "maskedf"], to=TensorProto.FLOAT),
        _const(p + "axes12", np.array([1, 2], np.int64)),
        helper.make_node(
            "ReduceMin", [p + "maskedf", p + "axes12"], [p + "allmasked"], keepdims=1
        ),  # [B,1,1]
        helper.make_node("Sub", [p + "maskedf", p + "allmasked"], [p + "effective"]),  # 1 -> masked
        helper.make_node("Cast", [p + "effective"], [p + "eff_b"], to=TensorProto.BOOL),
        _const(p + "axis1", np.array([1], np.int64)),
        helper.make_node("Unsqueeze", [p + "eff_b", p + "axis1"], [p + "eff4"]),
        helper.make_node("Where", [p + "eff4", p + "ninf", p + "sim"], [p + "scores"]),
        helper.make_node("ArgMax", [p + "scores"], [p + "idx"], axis=3, keepdims=1),  # [B,h,Q,1]
        _const(p + "dshape", np.array([b, heads, nq, d], np.int64)),
        helper.make_node("Expand", [p + "idx", p + "dshape"], [p + "idxd"]),
        helper.make_node("GatherElements", [p + "fh", p + "idxd"], [p + "picked"], axis=2),  # [B,h,Q,D]
        helper.make_node("Transpose", [p + "picked"], [p + "pickedT"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", [p + "pickedT", p + "oshape"], list(node.output)),
    ]


def lower_plugins(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with ModulatedDeformConv2d/PrototypeSelection replaced by standard ops."""
    model = onnx.shape_inference.infer_shapes(model)
    infos = [*model.graph.value_info, *model.graph.input, *model.graph.output]
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in infos}
    types = {vi.name: vi.type.tensor_type.elem_type for vi in infos}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        if node.op_type == "ModulatedDeformConv2d":
            nodes += _lower_deform_conv(node)
        elif node.op_type == "PrototypeSelection":
            nodes += _lower_prototype_selection(node, shapes, types)
        else:
            nodes.append(node)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    keep = [o for o in out.opset_import if o.domain != "pem"]
    del out.opset_import[:]
    out.opset_import.extend(keep)
    return onnx.shape_inference.infer_shapes(out)
