"""The one small interface every inference backend implements, and the checks they share."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from pem_rt.errors import PemError
from pem_rt.model_meta import ModelMeta


class Backend(Protocol):
    """Runs the deployable PEM graph (shared/DESIGN.md contract) on one batch of frames.

    ``infer`` takes uint8 BGR [N, H, W, 3] at the model's input size and returns the graph's outputs by
    name (``labels`` for semantic models; ``query_labels``, ``query_scores``, ``winner``, ``winner_area``,
    ``mask_area`` for panoptic ones), each [N, ...]. N is 1 <= N <= ``max_batch`` for a dynamic-batch model
    (``meta.batch`` 0) and exactly ``meta.batch`` for a static one. The arrays belong to the caller (a
    backend never reuses them).
    """

    name: str  # what runs the model, for people: "onnxruntime CPUExecutionProvider", "tensorrt_rtx 1.7 ..."
    meta: ModelMeta
    max_batch: int  # most frames one infer call takes: the static batch, the engine profile's max, 0 = any

    @property
    def path(self) -> Path | str:
        """The model file, or the server address (grpc://host:port/model)."""
        ...

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


class BackendUnavailable(PemError):
    """This machine cannot run the requested backend (no GPU, no TensorRT, no cuda-python): callers may fall
    back to ONNX Runtime and say so."""


def check_input(
    path: Path | str, meta: ModelMeta, name: str, dtype: str, shape: tuple[int | str | None, ...]
) -> None:
    """The graph's input must be ``image`` uint8 [N, H, W, 3] at the size its metadata declares."""
    expected = (meta.input_height, meta.input_width, 3)
    static = tuple(d if isinstance(d, int) and d > 0 else None for d in shape)
    if name != "image" or dtype != "uint8" or len(shape) != 4 or static[1:] != expected:
        raise PemError(
            f"{path} is not a deployable PEM graph: input {name} {dtype} {list(shape)}, expected image uint8 "
            f"[N, {meta.input_height}, {meta.input_width}, 3] (its metadata's input size); re-export it with "
            f"`pem export --size {meta.input_height}x{meta.input_width}`"
        )


def check_outputs(path: Path | str, meta: ModelMeta, names: list[str]) -> None:
    missing = [n for n in meta.outputs if n not in names]
    if missing:
        raise PemError(
            f"{path} lacks the {meta.task} outputs {', '.join(missing)} (has {', '.join(names)}); "
            "re-export it with `pem export`"
        )
