"""The INT8 Q/DQ graph of a reference graph for TensorRT: calibration (calibration/) with the nodes graph
surgery replaces by a plugin (the prototype-selection MatMuls) kept out of INT8. Used by `pem calibrate`,
`pem build-engine --int8`, `pem compare` and the INT8 accuracy budget."""

from __future__ import annotations

from pathlib import Path

import onnx

from calibration.calibrate import CalibrationConfig, CalibrationResult, calibrate
from export.surgery import prototype_selection_matmuls
from pem_rt.errors import PemError
from pem_rt.lineage import INT8


def calibrate_for_tensorrt(
    reference: Path, out: Path, config: CalibrationConfig, role: str = INT8
) -> CalibrationResult:
    """:func:`calibration.calibrate.calibrate` with the nodes graph surgery replaces kept out of INT8
    (``role``: the lineage role of the result, SCRATCH for `pem compare`'s graphs)."""
    if not reference.is_file():
        raise PemError(f"--onnx {reference} does not exist; export one with `pem export --size HxW`")
    try:
        model = onnx.load(str(reference))
    except Exception:  # protobuf decode errors
        raise PemError(
            f"--onnx {reference} is not a readable ONNX file; re-export it with `pem export`"
        ) from None
    return calibrate(reference, out, config, keep_out=prototype_selection_matmuls(model), role=role)
