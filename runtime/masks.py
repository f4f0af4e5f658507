"""``--save-masks DIR``: one set of prediction files per frame, in the format `pem evaluate --predictions`
scores (pem_rt/predictions.py): ``<stem>.png`` label map (255 = void) and, for panoptic models,
``<stem>_panoptic.png`` + ``<stem>_panoptic.json``.

``<stem>`` is the image's own stem for image folders (so `pem evaluate --predictions DIR` finds them),
else ``<video stem>_<frame>`` / ``frame_<frame>`` / ``synthetic_<frame>`` with the source's frame number.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pem_rt.errors import PemError
from pem_rt.predictions import write_prediction

if TYPE_CHECKING:
    from runtime.segmenter import Result  # types only: segmenter imports the stream loop (Segmenter.stream)


class MaskWriter:
    def __init__(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PemError(f"--save-masks {folder}: cannot create the folder ({e.strerror})") from None
        self.folder = folder
        self.written = 0

    def write(self, stem: str, result: Result) -> None:
        write_prediction(self.folder, stem, result.labels, result.panoptic, result.segments, "--save-masks")
        self.written += 1
