"""A Polygraphy data loader that feeds real frames in the deployed graph's input format (uint8 BGR NHWC):

    polygraphy run model.onnx --onnxrt --data-loader-script calibration/polygraphy_loader.py
    polygraphy run model.trt.onnx --trt --plugins build/plugins/libpem_plugins.so \\
        --data-loader-script calibration/polygraphy_loader.py

Frames come from ``PEM_FRAMES`` (an image folder, a video, or ``skimage``, the default: scikit-image's
bundled photographs); ``PEM_FRAMES_LIMIT`` sets how many (default 8). The frame size and batch are read
from the PEM-RT metadata of the first ``.onnx`` on the command line (``PEM_SIZE=HxW`` overrides).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def _model_size() -> tuple[tuple[int, int], int]:
    from pem_rt.errors import PemError
    from pem_rt.model_meta import ModelMeta
    from pem_rt.sizes import parse_size

    if os.environ.get("PEM_SIZE"):
        return parse_size(os.environ["PEM_SIZE"], "PEM_SIZE"), 1

    model = next((Path(a) for a in sys.argv if a.endswith(".onnx") and Path(a).is_file()), None)
    if model is None:
        raise PemError("polygraphy_loader: no .onnx on the command line; set PEM_SIZE=HxW")
    meta = ModelMeta.from_onnx(model)
    return (meta.input_height, meta.input_width), max(meta.batch, 1)


def load_data() -> Iterator[dict[str, np.ndarray]]:
    """Polygraphy's data-loader entry point: one feed dict per iteration."""
    from calibration.frames import read_frames

    size, batch = _model_size()
    limit = int(os.environ.get("PEM_FRAMES_LIMIT", "8"))
    frames = read_frames(os.environ.get("PEM_FRAMES", "skimage"), size, limit * batch)
    for i in range(0, len(frames) - batch + 1, batch):
        yield {"image": np.ascontiguousarray(frames[i : i + batch])}
