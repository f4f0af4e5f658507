"""INT8 Q/DQ graph from a reference graph and a calibration cache, with NVIDIA ModelOpt's ONNX PTQ.

ModelOpt places the Q/DQ nodes the way TensorRT wants them (weights per channel, activations per
tensor) and keeps the rest in FP16 (or FP32); every activation scale comes from our cache, so ModelOpt
only runs one frame through the model to place nodes. Kept out of INT8: DeformConv (its plugin runs in
FP16/FP32) and the nodes the caller names (regular expressions over node names: the nodes a later stage
replaces by a plugin, and whatever ``--int8-exclude`` names). ModelOpt writes beside (and over) the model
it is given, so it gets a private copy: the user's graph is only ever read.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from pem_rt.errors import PemError
from pem_rt.files import atomic_path
from pem_rt.lineage import INT8, derived, stamp
from pem_rt.log import library_messages


@dataclass(frozen=True)
class QuantizeReport:
    quantized_nodes: int
    qdq_pairs: int
    excluded: tuple[str, ...]


def quantize_int8(
    reference: Path,
    out: Path,
    cache: Path,
    frame: np.ndarray,
    exclude: tuple[str, ...] = (),
    high_precision: str = "fp16",
    role: str = INT8,
) -> QuantizeReport:
    """Write the Q/DQ graph of ``reference`` to ``out`` (atomically); ``frame`` is one [1, H, W, 3] input.

    ``exclude``: regular expressions over node names kept out of INT8 (reported back as ``excluded``);
    ``role``: the lineage role of the result (INT8, or SCRATCH for `pem compare`'s graphs).
    """
    from modelopt.onnx.quantization import quantize

    model = onnx.load(str(reference))
    excluded = tuple(exclude)
    with tempfile.TemporaryDirectory() as tmp, library_messages(False, "modelopt", "root"):
        tmp_out = Path(tmp) / "int8.onnx"
        work = Path(tmp) / "model.onnx"
        shutil.copyfile(reference, work)  # ModelOpt rewrites and writes beside its input
        with contextlib.redirect_stdout(io.StringIO()):
            quantize(
                str(work),
                quantize_mode="int8",
                calibration_data={"image": frame},
                calibration_method="max",
                calibration_cache_path=str(cache),
                calibration_eps=["cpu"],
                op_types_to_exclude=["DeformConv"],
                nodes_to_exclude=list(excluded),
                high_precision_dtype=high_precision,
                output_path=str(tmp_out),
                log_level="ERROR",
            )
        if not tmp_out.is_file():
            raise PemError(f"ModelOpt wrote no quantized model for {reference}; see its log above")
        qdq = onnx.load(str(tmp_out))
    del qdq.metadata_props[:]
    qdq.metadata_props.extend(model.metadata_props)  # ModelOpt drops them
    stamp(qdq, derived(reference, model, role))
    ops = Counter(n.op_type for n in qdq.graph.node)
    consumers: set[str] = set()
    dq_outputs = {n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"}
    for n in qdq.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and dq_outputs.intersection(n.input):
            consumers.add(n.name)
    with atomic_path(out) as path:
        onnx.save(qdq, path)
    return QuantizeReport(len(consumers), ops["QuantizeLinear"], excluded)
