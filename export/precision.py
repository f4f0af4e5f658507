"""FP16 graphs with NVIDIA ModelOpt AutoCast: everything in FP16 except what would overflow.

AutoCast runs the FP32 graph on real frames and keeps in FP32 the nodes whose inputs or outputs leave
FP16's safe range (|x| > 512, the -inf masking of prototype selection, large reductions), inserting
casts around them; graph inputs and outputs keep their types (uint8 frames in, integer maps out).
AutoCast works on a private copy of the graph: the user's file is only ever read.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from pem_rt.errors import PemError
from pem_rt.files import atomic_path
from pem_rt.lineage import FP16, derived, stamp
from pem_rt.log import library_messages


def convert_fp16(
    reference: Path, out: Path, frames: np.ndarray, keep_fp32: tuple[str, ...] = (), role: str = FP16
) -> int:
    """Write the FP16 version of ``reference`` to ``out``; returns how many nodes stayed in FP32.

    ``frames`` (uint8 BGR [N, H, W, 3], N >= 1) are what AutoCast measures value ranges on;
    ``keep_fp32`` are regular expressions over node names that must stay FP32; ``role`` is the lineage
    role of the result (FP16, or SCRATCH for `pem compare`'s graphs).
    """
    from modelopt.onnx.autocast import convert_to_mixed_precision

    source = onnx.load(str(reference))
    batch = source.graph.input[0].type.tensor_type.shape.dim[0].dim_value or 1
    with tempfile.TemporaryDirectory() as tmp, library_messages(False, "modelopt", "root"):
        data = Path(tmp) / "frames"
        data.mkdir()
        for i in range(0, len(frames) - batch + 1, batch):
            np.savez(data / f"{i:05d}.npz", image=frames[i : i + batch])
        if not any(data.iterdir()):
            raise PemError(f"FP16 conversion needs at least {batch} frames")
        work = Path(tmp) / "model.onnx"
        shutil.copyfile(reference, work)
        with contextlib.redirect_stdout(io.StringIO()):
            model = convert_to_mixed_precision(
                str(work),
                low_precision_type="fp16",
                keep_io_types=True,
                calibration_data=str(data),
                nodes_to_exclude=list(keep_fp32) or None,
            )
    del model.metadata_props[:]
    model.metadata_props.extend(source.metadata_props)  # AutoCast drops them
    stamp(model, derived(reference, source, role))
    with atomic_path(out) as path:
        onnx.save(model, path)
    return _count_fp32_nodes(model)


def _count_fp32_nodes(model: onnx.ModelProto) -> int:
    """Nodes (other than casts) that still produce FP32 tensors."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        vi.name: vi.type.tensor_type.elem_type for vi in [*inferred.graph.value_info, *inferred.graph.output]
    }
    return sum(
        1
        for n in inferred.graph.node
        if n.op_type != "Cast" and n.output and types.get(n.output[0]) == onnx.TensorProto.FLOAT
    )
