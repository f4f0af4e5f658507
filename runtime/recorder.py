"""``--record out.mp4``: the overlay as a video, written to a temporary file and moved into place on close.

MP4 uses MPEG-4 Part 2 (``mp4v``), which pip's OpenCV can always encode (its FFmpeg has no H.264 encoder)
and every desktop player and FFmpeg-based tool reads; ``.avi`` uses MJPEG. A run stopped by Ctrl-C, q, the
end of the source or an error still finalises the file; only a killed process leaves no video (and no
half-written one under the final name).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from pem_rt.errors import PemError

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class Recorder:
    """Args: path (.mp4, .avi, .mkv, .mov), fps. The first frame sets the size; later ones are scaled."""

    def __init__(self, path: Path, fps: float) -> None:
        suffix = path.suffix.lower()
        if suffix not in FOURCC:
            raise PemError(f"--record {path}: use one of {', '.join(FOURCC)} (e.g. out.mp4)")
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fps = float(fps)
        self.frames = 0
        self._tmp = path.with_name(f".{path.stem}.partial{suffix}")
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            h, w = image.shape[:2]
            self._size = (w - w % 2, h - h % 2)  # MPEG-4 needs even sizes
            fourcc = cv2.VideoWriter.fourcc(*FOURCC[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.CAP_FFMPEG, fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise PemError(
                    f"--record {self.path}: OpenCV cannot write this video (is the folder writable?)"
                )
        assert self._size is not None
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> Path | None:
        """Finalise the video; returns its path, or None when no frame was written."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        os.replace(self._tmp, self.path)
        return self.path
