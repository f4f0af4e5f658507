"""``--record out.mp4``: the overlay as a video, written to a temporary file and moved into place on close.

Encoded with PyAV (FFmpeg's libraries; its wheels bundle libx264 and libx265), so the default is H.264 in
MP4, which browsers, dashboards and phones play. ``--record-codec`` picks another: ``hevc`` (H.265, half
the size, fewer players), ``mjpeg`` (every frame a JPEG: large, cheapest to encode) or ``mp4v``
(MPEG-4 Part 2, what older tools expect). Containers by suffix: .mp4 .m4v .mov .mkv .avi. A run stopped
by Ctrl-C, q, the end of the source or an error still finalises the file; only a killed process leaves
no video (and no half-written one under the final name).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pem_rt.errors import PemError


@dataclass(frozen=True)
class Codec:
    encoder: str  # FFmpeg encoder name
    pix_fmt: str
    options: tuple[tuple[str, str], ...] = ()


# Quality: visually lossless for overlays (sharp class borders, HUD text); x264's superfast preset
# encodes 720p in about 20 ms a frame on two busy cores (veryfast: 27 ms, half the size).
CODECS: dict[str, Codec] = {
    "h264": Codec("libx264", "yuv420p", (("crf", "20"), ("preset", "superfast"))),
    "hevc": Codec(
        "libx265", "yuv420p", (("crf", "24"), ("preset", "veryfast"), ("x265-params", "log-level=none"))
    ),
    "mjpeg": Codec("mjpeg", "yuvj420p", (("q:v", "3"),)),
    "mp4v": Codec("mpeg4", "yuv420p", (("q:v", "3"),)),
}
DEFAULT_CODEC = "h264"
# Video suffixes --record takes (the multi-source pattern logic tells a file from a folder by these).
CONTAINERS = (".mp4", ".m4v", ".mov", ".mkv", ".avi")
FOURCC = CONTAINERS  # the name the multi-stream code knows these by


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise PemError(
            "--record needs PyAV (`pip install av`, part of pem-rt[runtime]); it bundles the H.264 encoder"
        ) from None
    return av


class Recorder:
    """Args: path (.mp4, .m4v, .mov, .mkv, .avi), fps, codec (``CODECS``). The first frame sets the size
    (rounded down to even, as 4:2:0 video needs); later frames of another size are scaled to it."""

    def __init__(self, path: Path, fps: float, codec: str = DEFAULT_CODEC) -> None:
        suffix = path.suffix.lower()
        if suffix not in CONTAINERS:
            raise PemError(f"--record {path}: use one of {', '.join(CONTAINERS)} (e.g. out.mp4)")
        if codec not in CODECS:
            raise PemError(f"--record-codec {codec}: choose one of {', '.join(CODECS)}")
        self._av = _import_av()
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fps = float(fps)
        self.codec = codec
        self.frames = 0
        self._tmp = path.with_name(f".{path.stem}.partial{suffix}")
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None

    def _open(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        self._size = (w - w % 2, h - h % 2)
        spec = CODECS[self.codec]
        rate = Fraction(self.fps).limit_denominator(1001)
        try:
            self._container = self._av.open(str(self._tmp), mode="w")
            stream = self._container.add_stream(spec.encoder, rate=rate, options=dict(spec.options))
        except (OSError, ValueError, self._av.FFmpegError) as e:
            self._abort()
            raise PemError(f"--record {self.path}: cannot write a {self.codec} video there ({e})") from None
        stream.width, stream.height = self._size
        stream.pix_fmt = spec.pix_fmt
        self._stream = stream

    def write(self, image: np.ndarray) -> None:
        if self._container is None:
            self._open(image)
        assert self._size is not None
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def _abort(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):  # the file is discarded anyway
                self._container.close()
        self._container = self._stream = None
        self._tmp.unlink(missing_ok=True)

    def close(self) -> Path | None:
        """Finalise the video (flush the encoder, write the index); its path, or None when no frame came."""
        if self._container is None:
            return None
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except BaseException:
            self._abort()
            raise
        self._container = self._stream = None
        os.replace(self._tmp, self.path)
        return self.path
