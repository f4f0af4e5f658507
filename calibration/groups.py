"""The model part every node of an exported PEM graph belongs to: the groups INT8 sensitivity and the
accuracy budget keep in or out of INT8 together.

A node's module path comes from the graph itself: the ``pkg.torch.onnx.name_scopes`` metadata the
dynamo exporter writes on every node, or the ``/model/backbone/features.3/conv/Conv`` names of the
TorchScript exporter (the QAT export). Groups:

- ``backbone.res2`` .. ``backbone.res5``: the backbone by output stride (ResNet's stem + ``layer1`` is res2;
  STDC's two ConvX stem blocks are res2, and each stride-2 CatBottleneck, one with ``avd_layer`` or
  ``skip``, starts the next stage);
- ``pixel_decoder.in_proj`` (the 1x1 in-projections), ``pixel_decoder.context`` (global context, CSM and
  the top-down fusions), ``pixel_decoder.up1`` .. ``up3`` (the deformable up-sampling blocks),
  ``pixel_decoder.out`` (the mask-feature projection);
- ``decoder.input_proj``, and per decoder layer ``decoder.L<i>.pem_ca`` / ``.self_attn`` / ``.ffn``;
- ``heads`` (decoder norm, class and mask heads, the mask einsum) and ``postprocess`` (the graph's
  pre-/post-processing outside the model).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

import onnx

SCOPE_KEY = "pkg.torch.onnx.name_scopes"
POSTPROCESS = "postprocess"
_INDEXED = re.compile(r"^(\w+)\.(\d+)(?:\.|$)")


def node_scope(node: onnx.NodeProto) -> str:
    """The module path of ``node`` without the ``model.`` prefix, e.g. ``backbone.features.3.conv_list.0``;
    "" for a node outside the model (the deploy wrapper's pre-/post-processing)."""
    for prop in node.metadata_props:
        if prop.key == SCOPE_KEY:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            modules = [s for s in scopes if s == "model" or s.startswith("model.")]
            return _strip_model(modules[-1]) if modules else ""
    if node.name.startswith("/"):  # TorchScript exporter: /model/backbone/features.3/conv/Conv
        return _strip_model(".".join(node.name.strip("/").split("/")[:-1]))
    return ""


def _strip_model(path: str) -> str:
    if path == "model":
        return ""
    return path[len("model.") :] if path.startswith("model.") else ""


def _stdc_stages(scopes: Sequence[str]) -> dict[int, str]:
    """STDC block index -> stage name: ConvX blocks are res2, each stride-2 CatBottleneck starts a stage."""
    blocks: dict[int, set[str]] = {}
    for scope in scopes:
        m = re.match(r"^backbone\.features\.(\d+)(?:\.(\w+))?", scope)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(m.group(2) or "")
    stage, names = 2, {}
    for index in sorted(blocks):
        children = blocks[index]
        is_bottleneck = "conv_list" in children
        if is_bottleneck and children & {"avd_layer", "skip"}:
            stage += 1
        names[index] = f"backbone.res{stage}"
    return names


def _backbone_group(scope: str, stdc: dict[int, str]) -> str:
    m = re.match(r"^backbone\.features\.(\d+)", scope)
    if m:
        return stdc[int(m.group(1))]
    m = re.match(r"^backbone\.layer(\d)", scope)
    if m:
        return f"backbone.res{int(m.group(1)) + 1}"
    return "backbone.res2"  # ResNet's stem (conv1, bn1, relu, maxpool)


def _pixel_decoder_group(rest: str) -> str:
    m = _INDEXED.match(rest)
    if m and m.group(1) == "dcn":
        return f"pixel_decoder.up{int(m.group(2)) + 1}"
    if rest.startswith("in_projections"):
        return "pixel_decoder.in_proj"
    if rest == "out" or rest.startswith("out."):
        return "pixel_decoder.out"
    return "pixel_decoder.context"


_DECODER_PARTS = {"cross_attention": "pem_ca", "self_attention": "self_attn", "ffn": "ffn"}


def _decoder_group(rest: str) -> str:
    m = _INDEXED.match(rest)
    if m and m.group(1) in _DECODER_PARTS:
        return f"decoder.L{m.group(2)}.{_DECODER_PARTS[m.group(1)]}"
    if rest.startswith("input_proj"):
        return "decoder.input_proj"
    return "heads"


def group_of_scopes(scopes: Sequence[str]) -> list[str]:
    """The group of each module path in ``scopes`` (all of one graph: STDC stages need the whole list)."""
    stdc = _stdc_stages(scopes)
    groups = []
    for scope in scopes:
        part, _, rest = scope.partition(".")
        if part == "backbone":
            groups.append(_backbone_group(scope, stdc))
        elif part == "pixel_decoder":
            groups.append(_pixel_decoder_group(rest))
        elif part == "predictor":
            groups.append(_decoder_group(rest))
        else:
            groups.append(POSTPROCESS)
    return groups


def group_nodes(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Group name -> names of its nodes, groups in graph order (Constant nodes are left out)."""
    nodes = [n for n in model.graph.node if n.op_type != "Constant" and n.name]
    groups: dict[str, list[str]] = {}
    for node, group in zip(nodes, group_of_scopes([node_scope(n) for n in nodes]), strict=True):
        groups.setdefault(group, []).append(node.name)
    return groups
