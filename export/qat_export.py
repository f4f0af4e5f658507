"""The Q/DQ ONNX graph of a quantisation-aware trained checkpoint (`pem train --qat`), for `pem export`.

ModelOpt's fake quantizers export as QuantizeLinear/DequantizeLinear pairs only through PyTorch's
TorchScript (legacy) exporter; the dynamo exporter the reference graph uses does not take them. The
legacy exporter has no symbolic for torchvision's deform_conv2d, so :func:`_deform_conv_symbolic` maps it
to ONNX DeformConv (opset 19), which graph surgery then turns into our plugin like in the reference graph. The
exporter's Constant nodes become initializers, so the graph reads like the dynamo one to graph surgery
(its patterns look for constant tensors). The result is a deployable graph (same input, outputs and
metadata as `pem export`) with lineage role ``int8`` and ``pem.int8_source = qat``: `pem build-engine
--int8 --onnx` builds it without calibration.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch

from export.deploy_model import DeployModel
from pem_rt.errors import PemError
from pem_rt.files import atomic_path
from pem_rt.lineage import INT8, Lineage, stamp
from pem_rt.model_meta import ModelMeta
from training.model import PEM

INT8_SOURCE_KEY = "pem.int8_source"
QAT_SOURCE = "qat"
QAT_OPSET = 19


def _deform_conv_symbolic() -> Any:
    """ONNX DeformConv for torchvision::deform_conv2d (input, weight, offset, mask, bias, stride, padding,
    dilation, groups, offset groups, use_mask), for the TorchScript exporter."""
    from torch.onnx.symbolic_helper import parse_args

    @parse_args("v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b")
    def symbolic(  # noqa: PLR0913 (torchvision's signature)
        g: Any,
        x: Any,
        weight: Any,
        offset: Any,
        mask: Any,
        bias: Any,
        stride_h: int,
        stride_w: int,
        pad_h: int,
        pad_w: int,
        dil_h: int,
        dil_w: int,
        groups: int,
        offset_groups: int,
        use_mask: bool,
    ) -> Any:
        return g.op(
            "DeformConv",
            x,
            weight,
            offset,
            bias,
            mask,
            strides_i=[stride_h, stride_w],
            pads_i=[pad_h, pad_w, pad_h, pad_w],
            dilations_i=[dil_h, dil_w],
            group_i=groups,
            offset_group_i=offset_groups,
        )

    return symbolic


def _constants_to_initializers(model: onnx.ModelProto) -> None:
    kept = []
    for node in model.graph.node:
        attrs = list(node.attribute)
        if node.op_type == "Constant" and len(attrs) == 1 and attrs[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attrs[0].t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)


def is_qat_graph(props: dict[str, str]) -> bool:
    return props.get(INT8_SOURCE_KEY) == QAT_SOURCE


def export_qdq_onnx(
    model: PEM, path: Path, meta: ModelMeta, parent_sha256: str = "", role: str = INT8
) -> None:
    """Write the Q/DQ graph of fake-quantised ``model`` (semantic, batch 1, ``meta``'s size) to ``path``
    (``role``: its lineage role, SCRATCH for `pem compare`'s graphs)."""
    if meta.task != "semantic" or meta.batch != 1:
        raise PemError("a QAT checkpoint exports as a semantic, batch-1 graph: drop --task/--batch")
    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", _deform_conv_symbolic(), QAT_OPSET)
    deploy = DeployModel(model, "semantic").eval()
    example = torch.randint(0, 256, (1, meta.input_height, meta.input_width, 3), dtype=torch.uint8)
    logging.getLogger("modelopt").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")  # the TorchScript tracer's notes on shape arithmetic
        torch.onnx.export(
            deploy,
            (example,),
            str(Path(tmp) / "qat.onnx"),
            dynamo=False,
            opset_version=QAT_OPSET,
            input_names=["image"],
            output_names=deploy.output_names,
        )
        proto = onnx.load(str(Path(tmp) / "qat.onnx"))
    _constants_to_initializers(proto)
    if not any(n.op_type == "DequantizeLinear" for n in proto.graph.node):
        raise PemError("the checkpoint exported without Q/DQ nodes: is it from `pem train --qat`?")
    for key, value in {**meta.to_props(), INT8_SOURCE_KEY: QAT_SOURCE}.items():
        proto.metadata_props.add(key=key, value=value)
    stamp(proto, Lineage(role, parent_sha256))
    onnx.checker.check_model(proto)
    with atomic_path(path) as tmp:
        onnx.save(proto, tmp)
