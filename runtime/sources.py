"""Frame sources: camera, video file, image folder or glob, network stream, GStreamer pipeline, synthetic.

``open_source(spec, camera)`` turns the CLI's ``--source``/``--camera`` into a :class:`Source`. Live
sources (camera, network, GStreamer, paced synthetic) deliver frames at their own rate and the pipeline
keeps only the newest; files deliver every frame. Cameras and network streams that stop delivering are
reopened with exponential back-off (0.5 s doubling to 4 s) until ``reconnect_timeout`` has passed, each
attempt reported in one line; then the run ends with one error line.

Sources report what they lose: an image of a folder that cannot be decoded is skipped with a warning, and
frames of a video file that cannot be decoded are skipped (the video said to be damaged from where it
broke); both are counted in ``lost`` and described in ``damage`` for the metrics and the run's last
lines. ``strict`` turns the first loss into the run's one error line instead.
"""

from __future__ import annotations

import glob as globlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pem_rt.errors import PemError
from pem_rt.images import IMAGE_SUFFIXES, is_image
from pem_rt.sizes import parse_size
from pem_rt.synthetic import FPS as SYNTHETIC_FPS
from pem_rt.synthetic import SyntheticScene
from runtime.gpu_decode import Decoder, choose_decoder, open_nvdec

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
DEFAULT_SYNTHETIC_SIZE = (720, 1280)
NETWORK_TIMEOUT_MS = 5000
SOURCE_KINDS = (
    "a video file, an image folder or glob, an rtsp:// or http:// URL, a GStreamer pipeline, csi://N, "
    "or synthetic[:HxW][@SEED]"
)

Log = Callable[[str], None]


def quiet_opencv(verbose: bool = False) -> None:
    """Our own one-line messages replace OpenCV's and FFmpeg's logs, unless ``verbose``.

    FFmpeg reads OPENCV_FFMPEG_LOGLEVEL when OpenCV first opens a video; a value the user set wins.
    RTSP goes over TCP (interleaved) unless OPENCV_FFMPEG_CAPTURE_OPTIONS says otherwise: no lost packets,
    no smeared frames, and it passes firewalls.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "24" if verbose else "-8")
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    level = cv2.utils.logging.LOG_LEVEL_WARNING if verbose else cv2.utils.logging.LOG_LEVEL_SILENT
    cv2.utils.logging.setLogLevel(level)


def has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


MIN_FRAME = 16  # the smallest frame a source gives (height and width)


class Source:
    """A stream of BGR uint8 frames. ``read`` returns None at the end (EOF); errors are PemErrors."""

    description: str = "source"
    live: bool = False  # True: frames arrive at the source's pace; keep only the newest when busy
    fps: float = 30.0
    reconnects: int = 0
    read_errors: int = 0  # reads of a live source that returned no frame (each one starts a reconnect)
    lost: int = 0  # frames that could not be decoded (skipped)
    strict: bool = False  # a lost frame stops the run (--strict)
    damage: tuple[str, ...] = ()  # what was lost and where, one phrase per place

    def _lose(self, count: int, where: str, error: str) -> None:
        """Count ``count`` lost frames at ``where``; with ``strict``, ``error`` ends the run instead."""
        if self.strict:
            raise PemError(f"{error} (--strict stops at the first frame that cannot be decoded)")
        self.lost += count
        self.damage = (*self.damage, where)

    def open(self) -> None:
        """Acquire the device/file/stream (idempotent); a PemError says why it cannot be."""

    def read(self, stop: threading.Event) -> np.ndarray | None:
        raise NotImplementedError

    def stem(self, index: int) -> str:
        """File stem for frame ``index``'s saved masks (image sources keep the image's own stem)."""
        return f"frame_{index:06d}"

    def close(self) -> None:
        """Release the device/file/stream (idempotent)."""


class SyntheticSource(Source):
    """The generated street scene; ``realtime`` paces it at 30 FPS like a camera (then it is live); each
    ``seed`` is another street (several synthetic sources are several streams)."""

    def __init__(
        self, size: tuple[int, int] = DEFAULT_SYNTHETIC_SIZE, realtime: bool = False, seed: int = 0
    ) -> None:
        self.scene = SyntheticScene(*size, seed=seed)
        self.size = size
        self.seed = seed
        self.live = realtime
        self.fps = SYNTHETIC_FPS
        self.description = (
            f"synthetic {size[0]}x{size[1]}"
            + (f" seed {seed}" if seed else "")
            + (" (paced at 30 FPS)" if realtime else "")
        )
        self._index = 0
        self._next = 0.0

    def read(self, stop: threading.Event) -> np.ndarray | None:
        if self.live:
            now = time.perf_counter()
            if self._next > now:
                stop.wait(self._next - now)
            self._next = max(now, self._next) + 1.0 / self.fps
        frame = self.scene.frame(self._index)
        self._index += 1
        return frame

    def stem(self, index: int) -> str:
        return f"synthetic_{index:06d}"


class ImageFilesSource(Source):
    """Images of a folder (sorted by name) or of a glob pattern, one frame each."""

    def __init__(self, paths: list[Path], description: str, log: Log = print) -> None:
        self.paths = paths
        self.description = description
        self.fps = 10.0
        self.log = log
        self._index = 0
        self._delivered: list[Path] = []  # the image of each delivered frame (skipped ones are not)

    def read(self, stop: threading.Event) -> np.ndarray | None:
        while self._index < len(self.paths):
            path = self.paths[self._index]
            self._index += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                self._delivered.append(path)
                return frame
            why = f"{path}: not a readable image (corrupt, or a format OpenCV cannot decode)"
            self._lose(1, path.name, why)
            self.log(f"warning: {why}; skipped (--strict stops instead)")
        return None

    def stem(self, index: int) -> str:
        return self._delivered[index].stem if index < len(self._delivered) else super().stem(index)


class CaptureSource(Source):
    """Anything cv2.VideoCapture opens: a video file, a camera, a network stream, a GStreamer pipeline.

    Args:
        target: what VideoCapture opens (camera index, path, URL or pipeline).
        description: how messages name it.
        live: camera/network/GStreamer (reconnect on loss) or a file (EOF ends the run).
        api: the cv2.CAP_* backend.
        reconnect_timeout: seconds to keep reopening a lost live source.
        log: where reconnect messages go.
    """

    def __init__(
        self,
        target: int | str,
        description: str,
        live: bool,
        api: int = cv2.CAP_ANY,
        params: list[int] | None = None,
        reconnect_timeout: float = 30.0,
        open_error: str = "",
        log: Log = print,
    ) -> None:
        self.target, self.description, self.live, self.api = target, description, live, api
        self.params = params or []
        self.reconnect_timeout = reconnect_timeout
        self.open_error = open_error
        self.log = log
        self.cap: Any = None
        self.frames = 0
        self.expected = 0  # a video file's frame count (0: unknown)
        self.decoder: Decoder | None = None  # runtime/gpu_decode.py: NVDEC or a Jetson pipeline

    def _open_capture(self) -> Any:
        if self.decoder is not None and self.decoder.kind == "nvdec":
            cap = open_nvdec(str(self.target), self.log)
            if cap is not None:
                return cap
            self.decoder = None  # said in one line; OpenCV from now on
        if self.decoder is not None and self.decoder.kind == "gstreamer":
            cap = cv2.VideoCapture(self.decoder.pipeline, cv2.CAP_GSTREAMER)
        else:
            cap = cv2.VideoCapture(self.target, self.api, self.params)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def open(self) -> None:
        if self.cap is not None:
            return
        self.cap = self._open_capture()
        if self.cap is None:
            raise PemError(self.open_error or f"cannot open {self.description}")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else 30.0
        if not self.live:
            self.expected = max(0, int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))

    def read(self, stop: threading.Event) -> np.ndarray | None:
        if self.cap is None:
            return None
        ok, frame = self.cap.read()
        if ok and frame is not None:
            self.frames += 1
            return frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if not self.live:
            return self._past_damage()  # None at the end of the file
        self.read_errors += 1
        return self._reconnect(stop)

    def _past_damage(self) -> np.ndarray | None:
        """A video file stopped decoding before its last frame: skip what cannot be decoded, count it and
        say where; None at the real end of the file."""
        broke = self.frames + self.lost  # index of the frame that failed
        if broke >= self.expected:
            return None
        error = f"{self.description} is damaged: frame {broke + 1} of {self.expected} cannot be decoded"
        for tried in range(1, self.expected - broke):
            ok, frame = self.cap.read()
            if ok and frame is not None:
                self._lose(tried, f"frames {broke + 1}-{broke + tried}", error)
                self.frames += 1
                return frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        self._lose(
            self.expected - broke,
            f"frames {broke + 1}-{self.expected} (it broke at frame {broke + 1})",
            error,
        )
        return None

    def _reconnect(self, stop: threading.Event) -> np.ndarray | None:
        self.cap.release()
        self.cap = None
        start = time.perf_counter()
        delay, attempts = 0.5, 0
        self.log(
            f"{self.description}: lost after {self.frames} frames; reconnecting "
            f"(back-off 0.5 s doubling to 4 s, giving up after {self.reconnect_timeout:g} s)"
        )
        while not stop.is_set():
            waited = time.perf_counter() - start
            if waited >= self.reconnect_timeout:
                raise PemError(
                    f"{self.description} dropped after {self.frames} frames and did not come back within "
                    f"{self.reconnect_timeout:g} s ({attempts} attempts); check the source, or raise "
                    "--reconnect-timeout"
                )
            stop.wait(min(delay, max(0.0, self.reconnect_timeout - waited)))
            if stop.is_set():
                break
            attempts += 1
            cap = self._open_capture()
            if cap is not None:
                ok, frame = cap.read()
                if ok and frame is not None:
                    self.cap = cap
                    self.reconnects += 1
                    self.frames += 1
                    self.log(
                        f"{self.description}: reconnected after {time.perf_counter() - start:.1f} s "
                        f"({attempts} attempt{'s' if attempts > 1 else ''})"
                    )
                    return frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                cap.release()
            self.log(f"{self.description}: attempt {attempts} failed; next in {min(delay * 2, 4.0):g} s")
            delay = min(delay * 2, 4.0)
        return None  # stopped while reconnecting

    def stem(self, index: int) -> str:
        if isinstance(self.target, str) and not self.live:
            return f"{Path(self.target).stem}_{index:06d}"
        return super().stem(index)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def _camera(index: int, reconnect_timeout: float, log: Log) -> CaptureSource:
    device = Path(f"/dev/video{index}")
    why = (
        "does not exist" if os.name == "posix" and not device.exists() else "is busy or not a capture device"
    )
    return CaptureSource(
        index,
        f"camera {index}",
        live=True,
        reconnect_timeout=reconnect_timeout,
        open_error=(
            f"--camera {index}: cannot open camera {index} ({device} {why}); list cameras with "
            "`v4l2-ctl --list-devices`, or pass --source FILE/URL (or --source synthetic)"
        ),
        log=log,
    )


def _gstreamer(pipeline: str, reconnect_timeout: float, log: Log) -> CaptureSource:
    if not has_gstreamer():
        raise PemError(
            "this OpenCV has no GStreamer support (pip's opencv-python has FFmpeg and V4L2 only): for a "
            "GStreamer pipeline or csi:// install a system OpenCV built with GStreamer (Debian/Ubuntu "
            "python3-opencv, JetPack on Jetson), or pass the stream as --source rtsp://... or --camera N"
        )
    if "appsink" not in pipeline:
        pipeline = f"{pipeline} ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
    return CaptureSource(
        pipeline,
        "GStreamer pipeline",
        live=True,
        api=cv2.CAP_GSTREAMER,
        reconnect_timeout=reconnect_timeout,
        open_error=f"GStreamer could not start the pipeline '{pipeline}' (check it with gst-launch-1.0)",
        log=log,
    )


def _network(url: str, reconnect_timeout: float, log: Log) -> CaptureSource:
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        NETWORK_TIMEOUT_MS,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        NETWORK_TIMEOUT_MS,
    ]
    source = CaptureSource(
        url,
        url,
        live=True,
        api=cv2.CAP_FFMPEG,
        params=params,
        reconnect_timeout=reconnect_timeout,
        open_error=(
            f"--source {url}: cannot connect or no video in the stream (refused, not found, or no answer "
            f"within {NETWORK_TIMEOUT_MS // 1000} s); check the URL and that the server is up"
        ),
        log=log,
    )
    return _with_hardware_decoder(source, log)


def _with_hardware_decoder(source: CaptureSource, log: Log) -> CaptureSource:
    """Decode ``source`` with NVDEC or a Jetson's decoder where this machine has one (one line if not)."""
    decoder = choose_decoder(str(source.target), has_gstreamer())
    if decoder.note:
        log(f"{source.description}: {decoder.note}")
    source.decoder = decoder if decoder.kind != "opencv" else None
    return source


def _files(spec: str, log: Log) -> Source | None:
    """A folder, glob or single image; None when ``spec`` is none of these."""
    if any(c in spec for c in "*?["):
        paths = sorted(Path(p) for p in globlib.glob(spec) if is_image(Path(p)))
        if not paths:
            raise PemError(f"--source {spec}: the pattern matches no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageFilesSource(paths, f"{len(paths)} images matching {spec}", log)
    path = Path(spec)
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.is_file() and is_image(p))
        if not paths:
            raise PemError(f"--source {spec}: the folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageFilesSource(paths, f"{len(paths)} images in {spec}", log)
    if path.is_file() and is_image(path):
        return ImageFilesSource([path], f"image {spec}", log)
    return None


def _synthetic(spec: str, realtime: bool, seed: int) -> SyntheticSource:
    """``synthetic[:HxW][@SEED]``."""
    if "@" in spec:
        spec, text = spec.split("@", 1)
        try:
            seed = int(text)
        except ValueError:
            raise PemError(f"--source synthetic...@{text}: the seed must be an integer, e.g. @2") from None
        if seed < 0:
            raise PemError(f"--source synthetic...@{seed}: the seed must be >= 0")
    size = (
        parse_size(spec.split(":", 1)[1], "--source synthetic:HxW", MIN_FRAME)
        if ":" in spec
        else DEFAULT_SYNTHETIC_SIZE
    )
    return SyntheticSource(size, realtime, seed)


def open_source(
    spec: str | None = None,
    camera: int | None = None,
    realtime: bool = False,
    reconnect_timeout: float = 30.0,
    log: Log = print,
    seed: int = 0,
) -> Source:
    """The CLI's --source/--camera as a :class:`Source` (not yet opened; call ``open()``).

    ``seed``: the street of a ``synthetic`` source that names none (``synthetic@SEED`` names one).
    """
    if camera is not None:
        if spec is not None:
            raise PemError("pass --camera N or --source, not both")
        if camera < 0:
            raise PemError(f"--camera {camera}: camera indices start at 0")
        return _camera(camera, reconnect_timeout, log)
    spec = "synthetic" if spec is None else spec.strip()
    if spec == "synthetic" or spec.startswith(("synthetic:", "synthetic@")):
        return _synthetic(spec, realtime, seed)
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
    if scheme in NETWORK_SCHEMES:
        return _network(spec, reconnect_timeout, log)
    if scheme == "csi":
        sensor = spec.split("://", 1)[1] or "0"
        pipeline = f"nvarguscamerasrc sensor-id={sensor} ! nvvidconv"
        return _gstreamer(pipeline, reconnect_timeout, log)
    if "!" in spec:
        return _gstreamer(spec, reconnect_timeout, log)
    if scheme == "file":
        spec = spec.split("://", 1)[1]
    found = _files(spec, log)
    if found is not None:
        if realtime:
            log("note: --realtime paces only the synthetic source; image files are all processed")
        return found
    path = Path(spec)
    if not path.exists():
        raise PemError(f"--source {spec}: no such file or folder (expected {SOURCE_KINDS})")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise PemError(f"--source {spec}: not a readable file")
    video = CaptureSource(
        str(path),
        f"video {path.name}",
        live=False,
        api=cv2.CAP_FFMPEG,
        open_error=(
            f"--source {spec}: OpenCV/FFmpeg cannot read it as a video (corrupt, or not a video); "
            f"expected {SOURCE_KINDS}"
        ),
        log=log,
    )
    return _with_hardware_decoder(video, log)
