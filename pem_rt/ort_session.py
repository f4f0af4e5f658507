"""ONNX Runtime CPU sessions for checks and measurements (export, compare, calibration): one place that
keeps ONNX Runtime quiet, so a Q/DQ graph's hundreds of constant-folding warnings never reach the user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ERRORS_ONLY = 3  # ONNX Runtime's log severity: our own lines say what happens


def cpu_session(model: bytes | str | Path, optimize: bool = True) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for a graph file or its serialised bytes;
    ``optimize=False`` keeps every tensor as the graph names it (for reading intermediate tensors)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = ERRORS_ONLY
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
