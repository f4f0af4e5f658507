"""The ONNX node form of the PEM plugin ops: what graph surgery writes, TensorRT parses into plugins.

TensorRT's and TensorRT-RTX's ONNX parsers import a node they have no importer for as a plugin
(their "FallbackPluginImporter"): the creator is looked up by ``op_type`` (the plugin name), the
``plugin_version`` attribute (default "1") and the ``plugin_namespace`` attribute (default "", so ours
must be given: "pem"); the node's domain is not looked at. Only attributes the creator lists in
getFieldNames() become PluginFields (INT -> kINT32 x 1, INTS -> kINT32 x n); the two plugin_* attributes
are consumed by the parser. We put the nodes in domain "pem" (opset_import ("pem", 1)) so ONNX tools
see a custom op rather than an unknown standard one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PLUGIN_DOMAIN = "pem"
PLUGIN_OPSET = 1
DEFORM_CONV = "ModulatedDeformConv2d"
PROTOTYPE_SELECTION = "PrototypeSelection"


def opset_import() -> Any:
    """The ``OperatorSetIdProto`` for domain "pem", to add to ``ModelProto.opset_import``."""
    from onnx import helper

    return helper.make_opsetid(PLUGIN_DOMAIN, PLUGIN_OPSET)


def _pair(value: int | Sequence[int], name: str) -> list[int]:
    pair = [int(value), int(value)] if isinstance(value, int) else [int(v) for v in value]
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or 2 ints, got {value!r}")
    return pair


def deform_conv_node(
    inputs: Sequence[str],
    output: str,
    *,
    name: str,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    deformable_groups: int = 1,
) -> Any:
    """``ModulatedDeformConv2d`` node: inputs (x, offset, mask, weight[, bias]) -> output.

    Note the input order differs from ONNX DeformConv (X, W, offset, B, mask).
    """
    from onnx import helper

    if len(inputs) not in (4, 5):
        raise ValueError(
            f"{DEFORM_CONV} takes x, offset, mask, weight and an optional bias, got {list(inputs)}"
        )
    return helper.make_node(
        DEFORM_CONV,
        list(inputs),
        [output],
        name=name,
        domain=PLUGIN_DOMAIN,
        plugin_namespace=PLUGIN_DOMAIN,
        plugin_version=str(PLUGIN_OPSET),
        stride=_pair(stride, "stride"),
        padding=_pair(padding, "padding"),
        dilation=_pair(dilation, "dilation"),
        groups=int(groups),
        deformable_groups=int(deformable_groups),
    )


def prototype_selection_node(inputs: Sequence[str], output: str, *, name: str, heads: int) -> Any:
    """``PrototypeSelection`` node: inputs (features [B,N,C], queries [B,Q,C], mask_logits [B,Q,N])."""
    from onnx import helper

    if len(inputs) != 3:
        raise ValueError(f"{PROTOTYPE_SELECTION} takes features, queries and mask_logits, got {list(inputs)}")
    return helper.make_node(
        PROTOTYPE_SELECTION,
        list(inputs),
        [output],
        name=name,
        domain=PLUGIN_DOMAIN,
        plugin_namespace=PLUGIN_DOMAIN,
        plugin_version=str(PLUGIN_OPSET),
        heads=int(heads),
    )
