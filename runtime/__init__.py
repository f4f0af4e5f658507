"""Real-time segmentation of camera, video, RTSP and image streams. Never imports torch.

    from runtime import Segmenter
    seg = Segmenter("model.onnx")      # or an .engine; None = chosen by lineage under runs/
    result = seg(frame)                # BGR uint8 frame of any size -> result.labels uint8 [H, W]

The CLI (`pem stream`, `python runtime/stream.py`) is built on :class:`Segmenter` and
:class:`runtime.pipeline.Pipeline`. Names are imported lazily, so `import runtime.panoptic` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.pipeline import Outputs, Pipeline
    from runtime.segmenter import Result, Segmenter
    from runtime.sources import open_source

_EXPORTS = {
    "Segmenter": "runtime.segmenter",
    "Result": "runtime.segmenter",
    "Pipeline": "runtime.pipeline",
    "Outputs": "runtime.pipeline",
    "open_source": "runtime.sources",
}

__all__ = ["Outputs", "Pipeline", "Result", "Segmenter", "open_source"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
