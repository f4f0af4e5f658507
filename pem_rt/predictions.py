"""Prediction files: what `pem evaluate --save-predictions` and `pem stream --save-masks` write and
`pem evaluate --predictions` scores, one set per image, named by ``<stem>``::

    <stem>.png            semantic label map: single-channel 8-bit PNG at the image's size, contiguous
                          class ids (Cityscapes trainIds 0..18, ADE20K 0..149, COCO 0..132), 255 = void
    <stem>_panoptic.png   panoptic (optional): RGB PNG, segment id = R + 256 G + 256^2 B, 0 = void
    <stem>_panoptic.json  {"segments_info": [{"id": <segment id>, "category_id": <contiguous class>,
                          "isthing": <bool>}]}

Every file is written atomically (a reader never sees half a prediction).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pem_rt.errors import PemError
from pem_rt.files import atomic_write_bytes, atomic_write_text
from pem_rt.segments import Segment, id_to_rgb


def prediction_paths(folder: Path, stem: str) -> tuple[Path, Path, Path]:
    """(label map, panoptic PNG, panoptic JSON) of one image."""
    return folder / f"{stem}.png", folder / f"{stem}_panoptic.png", folder / f"{stem}_panoptic.json"


def _png(path: Path, image: np.ndarray, what: str) -> None:
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise PemError(f"{what}: cannot encode {path}")
    try:
        atomic_write_bytes(path, png.tobytes())
    except OSError as e:
        raise PemError(f"{what}: cannot write {path} ({e.strerror})") from None


def write_prediction(
    folder: Path,
    stem: str,
    labels: np.ndarray,
    panoptic: np.ndarray | None = None,
    segments: Sequence[Segment] | None = None,
    what: str = "predictions",
) -> None:
    """Write one image's prediction files; ``what`` (the flag) names the folder in error messages."""
    semantic, pan_png, pan_json = prediction_paths(folder, stem)
    _png(semantic, labels, what)
    if panoptic is None or segments is None:
        return
    _png(pan_png, id_to_rgb(panoptic)[:, :, ::-1], what)
    info = [{"id": s.id, "category_id": s.category_id, "isthing": s.isthing} for s in segments]
    try:
        atomic_write_text(pan_json, json.dumps({"segments_info": info}))
    except OSError as e:
        raise PemError(f"{what}: cannot write {pan_json} ({e.strerror})") from None
