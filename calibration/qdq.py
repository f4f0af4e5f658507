"""Q/DQ graphs, read and restricted: which nodes run in INT8, and the same graph with INT8 kept to some.

A node runs in INT8 when one of its inputs is a DequantizeLinear output (explicit quantisation, as
TensorRT reads it). :func:`restrict_int8` keeps the quantisation of the named nodes only: every other
node reads the float tensor its Q/DQ pair quantised instead, and the pairs nobody reads any more are
dropped. On a graph quantised with FP32 as its high precision this is "one part in INT8, the rest in
FP32" with exactly the scales and Q/DQ placement of the full INT8 graph, at the cost of a graph edit (the
sensitivity analysis runs it once per group instead of the quantiser).
"""

from __future__ import annotations

from collections.abc import Collection

import onnx

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def is_qdq_graph(model: onnx.ModelProto) -> bool:
    """True when the graph has explicit quantisation (a Q/DQ graph from calibration or QAT)."""
    return any(n.op_type == "DequantizeLinear" for n in model.graph.node)


def int8_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that read a dequantised tensor (the nodes TensorRT runs in INT8)."""
    dq_out = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return [
        n.name for n in model.graph.node if n.op_type not in QDQ_OPS and any(i in dq_out for i in n.input)
    ]


def restrict_int8(model: onnx.ModelProto, keep: Collection[str]) -> onnx.ModelProto:
    """A copy of Q/DQ graph ``model`` in which only the nodes named in ``keep`` stay quantised."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    producer = {o: n for n in graph.node for o in n.output}
    float_source: dict[str, str] = {}  # DQ output -> the float tensor its Q quantised
    for n in graph.node:
        if n.op_type == "DequantizeLinear":
            q = producer.get(n.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                float_source[n.output[0]] = q.input[0]
    keep = set(keep)
    for n in graph.node:
        if n.op_type in QDQ_OPS or n.name in keep:
            continue
        for i, name in enumerate(n.input):
            if name in float_source:
                n.input[i] = float_source[name]
    _drop_unread_qdq(graph)
    return out


def _drop_unread_qdq(graph: onnx.GraphProto) -> None:
    outputs = {o.name for o in graph.output}
    while True:
        read = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if n.op_type in QDQ_OPS and n.output[0] not in read]
        if not dead:
            return
        for n in dead:
            graph.node.remove(n)
