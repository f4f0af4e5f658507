"""``--save-masks DIR``: one label PNG per frame in the evaluator's prediction format (training/evaluate.py).

    DIR/<stem>.png             8-bit label map at the frame's size: contiguous class ids (Cityscapes
                               trainIds 0..18, ...), 255 = void
    DIR/<stem>_panoptic.png    (panoptic models) RGB segment ids, id = R + 256 G + 256^2 B, 0 = void
    DIR/<stem>_panoptic.json   (panoptic models) {"segments_info": [{"id", "category_id", "isthing"}]}

``<stem>`` is the image's own stem for image folders (so `pem evaluate --predictions DIR` finds them),
else ``<video stem>_<frame>`` / ``frame_<frame>`` / ``synthetic_<frame>`` with the source's frame number.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from pem_rt.errors import PemError
from runtime.segmenter import Result


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """int segment ids [H, W] -> uint8 RGB [H, W, 3] (COCO panoptic encoding)."""
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


class MaskWriter:
    def __init__(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PemError(f"--save-masks {folder}: cannot create the folder ({e.strerror})") from None
        self.folder = folder
        self.written = 0

    def _write(self, path: Path, image: np.ndarray) -> None:
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise PemError(f"cannot encode {path}")
        try:
            path.write_bytes(png.tobytes())
        except OSError as e:
            raise PemError(f"--save-masks: cannot write {path} ({e.strerror})") from None

    def write(self, stem: str, result: Result) -> None:
        self._write(self.folder / f"{stem}.png", result.labels)
        if result.panoptic is not None and result.segments is not None:
            self._write(self.folder / f"{stem}_panoptic.png", ids_to_rgb(result.panoptic)[:, :, ::-1])
            info = {
                "segments_info": [
                    {"id": s.id, "category_id": s.category_id, "isthing": s.isthing} for s in result.segments
                ]
            }
            (self.folder / f"{stem}_panoptic.json").write_text(json.dumps(info))
        self.written += 1
