"""`python export/surgery.py [--onnx model.onnx]`: reference graph -> TensorRT graph with our plugin ops.

Two small onnx-graphsurgeon passes, each finding its subgraph by structure (never by node names):

- every ``DeformConv`` becomes one ``ModulatedDeformConv2d`` plugin node
  (inputs x, offset, mask, weight[, bias]; attributes stride, padding, dilation, groups, deformable_groups);
- every prototype-selection subgraph -- head split (Reshape/Transpose), similarity (MatMul), masking
  (Less/Not/And/Where with -inf), ArgMax over tokens, GatherElements, head merge -- becomes one
  ``PrototypeSelection`` node (inputs features [B,N,C], queries [B,Q,C], mask logits [B,Q,N]; attribute
  heads).

Plugin nodes live in the ``pem`` ONNX domain and carry ``plugin_namespace``/``plugin_version``, which is
how TensorRT's ONNX parser finds a plugin creator for an op it does not know. The counts found must
equal what the model metadata promises (3 DCNs; one selection per PEM-CA layer), else surgery fails.

Either pass can be left out (:class:`PluginStrategy`): ``--dcn native`` keeps ONNX DeformConv for parsers
that import it (classic TensorRT >= 10.1; TensorRT-RTX's parser has none), ``--prototype-selection graph``
keeps the standard subgraph (every parser). With both, the graph has no plugin node at all: what
version-compatible, hardware-compatible and DLA engines need.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from pem_rt.command import run_command
from pem_rt.errors import PemError
from pem_rt.files import atomic_path
from pem_rt.lineage import TENSORRT_GRAPH, derived, pick_reference, require_reference, stamp
from pem_rt.model_meta import ModelMeta
from pem_rt.paths import check_output_file
from plugins.loader import PLUGIN_NAMESPACE, PLUGIN_VERSION
from plugins.onnx_ops import DEFORM_CONV as DEFORM_CONV_OP
from plugins.onnx_ops import PLUGIN_DOMAIN, PLUGIN_OPSET
from plugins.onnx_ops import PROTOTYPE_SELECTION as PROTOTYPE_OP

PIXEL_DECODER_DCNS = 3
# ops that only move data (Cast included: FP16 conversion puts casts inside the subgraphs we match)
_LAYOUT_OPS = {"Reshape", "Transpose", "Unsqueeze", "Squeeze", "Expand", "Identity", "Flatten", "Cast"}


DcnChoice = Literal["plugin", "native"]
SelectionChoice = Literal["plugin", "graph"]
DCN_CHOICES: tuple[DcnChoice, ...] = ("plugin", "native")
SELECTION_CHOICES: tuple[SelectionChoice, ...] = ("plugin", "graph")


@dataclass(frozen=True)
class PluginStrategy:
    """Which subgraphs become plugin nodes: DCN ``plugin`` (ModulatedDeformConv2d) or ``native`` (ONNX
    DeformConv, left as exported); prototype selection ``plugin`` (PrototypeSelection) or ``graph``."""

    dcn: DcnChoice = "plugin"
    prototype_selection: SelectionChoice = "plugin"

    @property
    def plugin_free(self) -> bool:
        return self.dcn == "native" and self.prototype_selection == "graph"

    def tag(self) -> str:
        """'' for the all-plugin default, else a file-name tag such as '-dcn_native' or '-noplugins'."""
        if self.plugin_free:
            return "-noplugins"
        parts = [f"dcn_{self.dcn}"] if self.dcn != "plugin" else []
        parts += [f"sel_{self.prototype_selection}"] if self.prototype_selection != "plugin" else []
        return "".join(f"-{p}" for p in parts)


ALL_PLUGINS = PluginStrategy()


class NoMatch(Exception):
    """A candidate node is not the pattern (internal to the matcher)."""


def _plugin_node(
    op: str, name: str, inputs: list[gs.Tensor], outputs: list[gs.Tensor], **attrs: object
) -> gs.Node:
    attrs = {**attrs, "plugin_namespace": PLUGIN_NAMESPACE, "plugin_version": PLUGIN_VERSION}
    return gs.Node(op=op, name=name, domain=PLUGIN_DOMAIN, attrs=attrs, inputs=inputs, outputs=outputs)


def _given(t: gs.Tensor | None) -> bool:
    return t is not None and bool(t.name)


def _as_dtype(graph: gs.Graph, t: gs.Tensor, dtype: np.dtype | None, tag: str) -> gs.Tensor:
    """``t`` itself if it already has ``dtype``, else the output of a new Cast node (plugins take one
    dtype for all floating inputs; FP16 conversion can leave weights or masks in another)."""
    if dtype is None or t.dtype is None or np.dtype(t.dtype) == np.dtype(dtype):
        return t
    if isinstance(t, gs.Constant):
        return gs.Constant(f"{t.name}_{np.dtype(dtype).name}", np.asarray(t.values).astype(dtype))
    out = gs.Variable(f"{t.name}_{tag}_{np.dtype(dtype).name}", dtype=dtype, shape=t.shape)
    to = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph.nodes.append(
        gs.Node("Cast", name=f"{tag}_cast_{t.name}", attrs={"to": to}, inputs=[t], outputs=[out])
    )
    return out


def _plugin_output(graph: gs.Graph, original: gs.Tensor, dtype: np.dtype | None, tag: str) -> gs.Tensor:
    """The tensor a plugin node should write: ``original`` when dtypes agree, else a new tensor that a
    Cast converts into ``original`` (whose consumers stay untouched)."""
    if dtype is None or original.dtype is None or np.dtype(original.dtype) == np.dtype(dtype):
        return original
    out = gs.Variable(f"{original.name}_{tag}", dtype=dtype, shape=original.shape)
    to = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(original.dtype))
    graph.nodes.append(
        gs.Node("Cast", name=f"{tag}_cast_out", attrs={"to": to}, inputs=[out], outputs=[original])
    )
    return out


def replace_deform_conv(graph: gs.Graph) -> int:
    """Replace every ONNX DeformConv by a ModulatedDeformConv2d plugin node; return how many."""
    count = 0
    for node in [n for n in graph.nodes if n.op == "DeformConv"]:
        inputs = list(node.inputs) + [None] * (5 - len(node.inputs))
        x, weight, offset, bias, mask = inputs
        if not _given(mask):
            raise PemError(
                f"DeformConv '{node.name}' has no mask: the plugin implements modulated DCNv2 only"
            )
        pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            raise PemError(
                f"DeformConv '{node.name}' has asymmetric pads {pads}; the plugin needs symmetric ones"
            )
        name = f"pem_deform_conv_{count}"
        dtype = x.dtype  # the plugin runs in the precision of its activation input
        ins = [
            _as_dtype(graph, t, dtype, name)
            for t in [x, offset, mask, weight] + ([bias] if _given(bias) else [])
        ]
        [output] = node.outputs
        node.outputs.clear()
        plugin = _plugin_node(
            DEFORM_CONV_OP,
            name,
            ins,
            [_plugin_output(graph, output, dtype, name)],
            stride=list(node.attrs.get("strides", [1, 1])),
            padding=pads[:2],
            dilation=list(node.attrs.get("dilations", [1, 1])),
            groups=int(node.attrs.get("group", 1)),
            deformable_groups=int(node.attrs.get("offset_group", 1)),
        )
        graph.nodes.append(plugin)
        count += 1
    graph.cleanup().toposort()
    return count


def _producer(t: gs.Tensor) -> gs.Node:
    if not t.inputs:
        raise NoMatch(f"{t.name} has no producer")
    return t.inputs[0]


def _rank(t: gs.Tensor) -> int | None:
    return None if t.shape is None else len(t.shape)


def _up_to_rank3(t: gs.Tensor) -> gs.Tensor:
    """Walk up through layout-only ops (head split/merge) to the [B, n, C] tensor they came from."""
    for _ in range(8):
        if _rank(t) == 3:
            return t
        node = _producer(t)
        if node.op not in _LAYOUT_OPS:
            raise NoMatch(f"{t.name} comes from {node.op}, not a layout op")
        t = node.inputs[0]
    raise NoMatch("no rank-3 source within 8 layout ops")


def _down_to_rank3(t: gs.Tensor) -> gs.Tensor:
    """Walk down a chain of single-consumer layout ops to the first rank-3 tensor."""
    for _ in range(8):
        if _rank(t) == 3:
            return t
        if len(t.outputs) != 1 or t.outputs[0].op not in _LAYOUT_OPS:
            raise NoMatch(f"{t.name} does not flow through layout ops only")
        t = t.outputs[0].outputs[0]
    raise NoMatch("no rank-3 result within 8 layout ops")


FP16_LOWEST = -65504.0


def _is_scalar_const(t: gs.Tensor, value: float) -> bool:
    """A one-element constant equal to ``value``. For -inf, FP16's lowest value counts too: ModelOpt clamps
    -inf to it when converting to FP16, which masks just the same (similarities lie in [-1, 1])."""
    if not isinstance(t, gs.Constant):
        return False
    v = np.asarray(t.values)
    if v.size != 1:
        return False
    x = float(v.reshape(-1)[0])
    return x <= FP16_LOWEST if math.isinf(value) and value < 0 else x == value


def _find_mask_logits(cond: gs.Tensor) -> gs.Tensor:
    """The mask logits behind a Where condition: the input of the ``Less(x, 0)`` among its ancestors."""
    frontier, seen = [cond], set()
    for _ in range(12):
        if not frontier:
            break
        t = frontier.pop(0)
        if id(t) in seen or not t.inputs:
            continue
        seen.add(id(t))
        node = t.inputs[0]
        if node.op == "Less" and _is_scalar_const(node.inputs[1], 0.0) and _rank(node.inputs[0]) == 3:
            return node.inputs[0]
        if node.op in _LAYOUT_OPS | {"And", "Not", "Or", "Cast"}:
            frontier.extend(i for i in node.inputs if isinstance(i, gs.Variable))
    raise NoMatch("no Less(mask_logits, 0) behind the Where condition")


@dataclass(frozen=True)
class SelectionMatch:
    """One prototype-selection subgraph: its boundary tensors, head count and similarity MatMul."""

    features: gs.Tensor
    queries: gs.Tensor
    mask_logits: gs.Tensor
    prototypes: gs.Tensor
    heads: int
    matmul: gs.Node


def _match_prototype_selection(argmax: gs.Node) -> SelectionMatch:
    """The subgraph around one ArgMax, or NoMatch."""
    if argmax.attrs.get("axis") not in (-1, 3) or argmax.attrs.get("keepdims", 1) != 0:
        raise NoMatch("not an ArgMax over the last axis")
    where = _producer(argmax.inputs[0])
    if where.op != "Where" or not _is_scalar_const(where.inputs[1], -math.inf):
        raise NoMatch("ArgMax input is not Where(mask, -inf, scores)")
    matmul = _producer(where.inputs[2])
    if matmul.op == "Cast":  # scores computed in FP16, masked in FP32
        matmul = _producer(matmul.inputs[0])
    if matmul.op != "MatMul" or _rank(matmul.outputs[0]) != 4:
        raise NoMatch("scores are not a per-head MatMul")
    queries = _up_to_rank3(matmul.inputs[0])
    features = _up_to_rank3(matmul.inputs[1])
    mask_logits = _find_mask_logits(where.inputs[0])
    gather = argmax.outputs[0]
    for _ in range(4):  # ArgMax -> Unsqueeze -> Expand -> GatherElements
        consumers = gather.outputs
        if len(consumers) != 1:
            raise NoMatch("selected indices have several consumers")
        if consumers[0].op == "GatherElements":
            gather_node = consumers[0]
            break
        if consumers[0].op not in _LAYOUT_OPS:
            raise NoMatch(f"indices flow into {consumers[0].op}")
        gather = consumers[0].outputs[0]
    else:
        raise NoMatch("no GatherElements after the ArgMax")
    if _up_to_rank3(gather_node.inputs[0]) is not features:
        raise NoMatch("GatherElements does not gather from the same features")
    prototypes = _down_to_rank3(gather_node.outputs[0])
    heads = matmul.outputs[0].shape[1]
    if not isinstance(heads, int):
        raise NoMatch("head count is not static")
    return SelectionMatch(features, queries, mask_logits, prototypes, heads, matmul)


def _selection_matches(graph: gs.Graph) -> list[SelectionMatch]:
    matches = []
    for argmax in [n for n in graph.nodes if n.op == "ArgMax"]:
        try:
            matches.append(_match_prototype_selection(argmax))
        except NoMatch:
            continue
    return matches


def prototype_selection_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the similarity MatMuls of every prototype-selection subgraph (to keep them out of INT8:
    the PrototypeSelection plugin that replaces them runs in FP16/FP32)."""
    graph = gs.import_onnx(onnx.shape_inference.infer_shapes(model))
    return [m.matmul.name for m in _selection_matches(graph)]


def replace_prototype_selection(graph: gs.Graph) -> int:
    """Replace every prototype-selection subgraph by one PrototypeSelection plugin node; return how many."""
    count = 0
    for m in _selection_matches(graph):
        features, queries, mask_logits, prototypes, heads = (
            m.features,
            m.queries,
            m.mask_logits,
            m.prototypes,
            m.heads,
        )
        prototypes.inputs.clear()  # detach from the old head-merge node; cleanup drops the subgraph
        name = f"pem_prototype_selection_{count}"
        dtype = features.dtype
        inputs = [_as_dtype(graph, t, dtype, name) for t in (features, queries, mask_logits)]
        output = _plugin_output(graph, prototypes, dtype, name)
        graph.nodes.append(_plugin_node(PROTOTYPE_OP, name, inputs, [output], heads=heads))
        count += 1
    graph.cleanup().toposort()
    return count


def _count_deform_conv(graph: gs.Graph) -> int:
    return sum(n.op == "DeformConv" for n in graph.nodes)


def to_tensorrt_graph(
    model: onnx.ModelProto, source: str = "model", strategy: PluginStrategy = ALL_PLUGINS
) -> tuple[onnx.ModelProto, int, int]:
    """Apply the passes ``strategy`` asks for; check the counts against the metadata.

    Returns (model, #DCNs, #prototype selections) found, whether replaced or kept."""
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props}, source)
    graph = gs.import_onnx(onnx.shape_inference.infer_shapes(model))  # dtypes of every tensor
    if any(n.domain == PLUGIN_DOMAIN for n in graph.nodes):
        raise PemError(
            f"{source} already has {PLUGIN_DOMAIN} plugin nodes; run surgery on the reference graph"
        )
    dcn = replace_deform_conv(graph) if strategy.dcn == "plugin" else _count_deform_conv(graph)
    if strategy.prototype_selection == "plugin":
        selections = replace_prototype_selection(graph)
    else:
        selections = len(_selection_matches(graph))
    want_sel = meta.decoder_layers if meta.cross_attention == "pem" else 0
    if dcn != PIXEL_DECODER_DCNS:
        raise PemError(
            f"{source}: found {dcn} DeformConv nodes, expected {PIXEL_DECODER_DCNS}; "
            "is it a PEM graph written by `pem export`?"
        )
    if selections != want_sel:
        raise PemError(
            f"{source}: found {selections} prototype-selection subgraphs, expected {want_sel} "
            f"({meta.decoder_layers} {meta.cross_attention} decoder layers); the graph pattern "
            "changed (exporter version?) -- please report it"
        )
    out = gs.export_onnx(graph)
    out.ir_version = model.ir_version
    del out.metadata_props[:]
    out.metadata_props.extend(model.metadata_props)
    uses_plugins = any(n.domain == PLUGIN_DOMAIN for n in out.graph.node)
    if uses_plugins and not any(o.domain == PLUGIN_DOMAIN for o in out.opset_import):
        out.opset_import.append(onnx.helper.make_opsetid(PLUGIN_DOMAIN, PLUGIN_OPSET))
    onnx.checker.check_model(out)
    return out, dcn, selections


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pem surgery", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument(
        "--onnx",
        type=Path,
        help="reference (or FP16/INT8) graph (default: the reference graph under runs/, by lineage)",
    )
    p.add_argument("--out", type=Path, help="output (default: <input stem>.trt.onnx beside the input)")
    p.add_argument(
        "--dcn",
        choices=DCN_CHOICES,
        default="plugin",
        help="plugin: ModulatedDeformConv2d nodes (default); native: keep ONNX DeformConv "
        "(classic TensorRT >= 10.1)",
    )
    p.add_argument(
        "--prototype-selection",
        choices=SELECTION_CHOICES,
        default="plugin",
        help="plugin: PrototypeSelection nodes (default); graph: keep the standard subgraph",
    )
    return p


def _run(args: argparse.Namespace) -> None:
    src = args.onnx or pick_reference("--onnx")
    if not Path(src).is_file():
        raise PemError(f"--onnx {src} does not exist; export one with `pem export --size HxW`")
    require_reference(Path(src), also=("fp16", "int8"))
    out = args.out or Path(src).with_suffix(".trt.onnx")
    check_output_file(out, "--out", "model.trt.onnx")
    try:
        model = onnx.load(str(src))
    except Exception as e:  # protobuf decode errors of a damaged file
        raise PemError(
            f"--onnx {src} is not a readable ONNX file ({type(e).__name__}); re-export it"
        ) from None
    strategy = PluginStrategy(args.dcn, args.prototype_selection)
    out_model, dcn, sel = to_tensorrt_graph(model, str(src), strategy)
    stamp(out_model, derived(Path(src), model, TENSORRT_GRAPH))
    out = args.out or Path(src).with_name(f"{Path(src).stem}{strategy.tag()}.trt.onnx")
    if Path(out).resolve() == Path(src).resolve():
        raise PemError(f"--out {out} is the input graph; name another file")
    with atomic_path(out) as tmp:
        onnx.save(out_model, tmp)
    print(describe_surgery(strategy, dcn, sel))
    print(f"wrote {out}")


def describe_surgery(strategy: PluginStrategy, dcn: int, selections: int) -> str:
    """One line: what became a plugin node and what stayed standard ONNX."""
    if strategy == ALL_PLUGINS:
        return (
            f"replaced {dcn} DeformConv -> {DEFORM_CONV_OP} and {selections} prototype selections -> "
            f"{PROTOTYPE_OP}"
        )
    dcn_text = (
        f"{dcn} DeformConv -> {DEFORM_CONV_OP}" if strategy.dcn == "plugin" else f"{dcn} DeformConv kept"
    )
    if strategy.prototype_selection == "plugin":
        sel_text = f"{selections} prototype selections -> {PROTOTYPE_OP}"
    else:
        sel_text = f"{selections} prototype selections kept as ONNX subgraphs"
    return f"{dcn_text}; {sel_text}"


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("surgery", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
