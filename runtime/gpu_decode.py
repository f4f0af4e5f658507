"""Hardware video decoding where the machine has it, OpenCV (FFmpeg on the CPU) everywhere else.

- An NVIDIA GPU with PyNvVideoCodec installed (``pip install -e '.[gpu]'``): ``rtsp://`` streams and
  video files are demuxed by its FFmpeg and decoded by NVDEC (:class:`NvdecCapture`).
- A Jetson whose OpenCV has GStreamer (JetPack's): a ``uridecodebin`` pipeline, which picks the
  hardware decoder (nvv4l2decoder) by itself, converted by nvvidconv (:func:`jetson_pipeline`).
- Otherwise OpenCV decodes, as before. Where a GPU is present but its decoder cannot be used, one line
  says so and why; a machine without a GPU says nothing.

:class:`NvdecCapture` has the small part of ``cv2.VideoCapture``'s interface the capture source uses
(isOpened / read / get(CAP_PROP_FPS) / release), so reconnecting works the same for every decoder.
The NVDEC path has not been run on a GPU yet (no GPU was at hand when it was written); the selection
logic and the fallback are tested here.
"""

from __future__ import annotations

import collections
import ctypes
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pem_rt.doctor import read_jetson
from pem_rt.log import has_nvidia_gpu

Log = Callable[[str], None]


@dataclass(frozen=True)
class Decoder:
    """How a source will be decoded: ``kind`` nvdec / gstreamer / opencv, the GStreamer pipeline if any,
    and the one line to say (empty: nothing to say)."""

    kind: str
    pipeline: str = ""
    note: str = ""


def jetson_pipeline(uri: str) -> str:
    """A GStreamer pipeline decoding ``uri`` (rtsp://, file://) with a Jetson's hardware decoder."""
    return (
        f"uridecodebin uri={uri} ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! "
        "video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


def choose_decoder(target: str, gstreamer: bool, root: Path = Path("/")) -> Decoder:
    """The decoder for ``target`` (a URL or a video file path) on this machine."""
    if read_jetson(root) is not None:
        if gstreamer:
            uri = target if "://" in target else Path(target).resolve().as_uri()
            return Decoder("gstreamer", jetson_pipeline(uri))
        return Decoder("opencv", note="decoding on the CPU: this OpenCV has no GStreamer (JetPack's has; see "
                       "`pem doctor`)")  # fmt: skip
    if not has_nvidia_gpu(root):
        return Decoder("opencv")
    if importlib.util.find_spec("PyNvVideoCodec") is None:
        return Decoder(
            "opencv", note="decoding on the CPU: pip install -e '.[gpu]' (PyNvVideoCodec) for NVDEC"
        )
    return Decoder("nvdec")


class NvdecCapture:
    """``target`` demuxed by PyNvVideoCodec and decoded by NVDEC into BGR frames on the host."""

    def __init__(self, target: str, gpu: int = 0) -> None:
        import PyNvVideoCodec as nvc

        self._demuxer = nvc.CreateDemuxer(filename=target)
        self._decoder = nvc.CreateDecoder(
            gpuid=gpu, codec=self._demuxer.GetNvCodecId(), cudacontext=0, cudastream=0, usedevicememory=False
        )
        self._packets = iter(self._demuxer)
        self._frames: collections.deque[np.ndarray] = collections.deque()
        self._ended = False
        fps = float(getattr(self._demuxer, "FrameRate", lambda: 0.0)() or 0.0)
        self.fps = fps

    def isOpened(self) -> bool:  # cv2.VideoCapture's name
        return True

    def _to_bgr(self, frame: Any) -> np.ndarray:
        w, h = self._decoder.GetWidth(), self._decoder.GetHeight()
        size = w * h * 3 // 2  # NV12
        data = ctypes.string_at(frame.GetPtrToPlane(0), size)
        nv12 = np.frombuffer(data, np.uint8).reshape(h * 3 // 2, w)
        return cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)

    def read(self) -> tuple[bool, np.ndarray | None]:
        while not self._frames and not self._ended:
            packet = next(self._packets, None)
            if packet is None:
                self._ended = True
                break
            self._frames.extend(self._to_bgr(f) for f in self._decoder.Decode(packet))
        if self._frames:
            return True, self._frames.popleft()
        return False, None

    def get(self, prop: int) -> float:
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self._frames.clear()
        self._ended = True


def open_nvdec(target: str, log: Log) -> Any:
    """An :class:`NvdecCapture`, or None (after one line) when NVDEC cannot open ``target``."""
    try:
        return NvdecCapture(target)
    except Exception as e:  # PyNvVideoCodec raises its own types; any failure means: use OpenCV
        log(f"{target}: NVDEC cannot decode it ({type(e).__name__}: {str(e)[:120]}); decoding with OpenCV")
        return None
