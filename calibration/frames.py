"""Calibration and evaluation frames: an image folder, a video, or scikit-image's bundled photographs.

Frames come back exactly as the deployed graph takes them: uint8 BGR [N, H, W, 3] at the model's input
size, fitted the way the stream runtime fits them (pem_rt.letterbox: aspect kept, padded); the graph
does the rest.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pem_rt.errors import PemError
from pem_rt.images import IMAGE_SUFFIXES, is_image
from pem_rt.letterbox import Letterbox

# scikit-image's bundled photographs (offline): real image statistics for calibration and tests
SKIMAGE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "stereo_motorcycle",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "camera",
    "coins",
    "grass",
    "gravel",
    "brick",
    "moon",
    "clock",
)


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A BGR frame fitted to (H, W) exactly as `pem stream` fits it (its default letterbox)."""
    return Letterbox(size).apply(np.ascontiguousarray(frame))[0]


def fit_labels(labels: np.ndarray, size: tuple[int, int], void: int = 255) -> np.ndarray:
    """A label map placed like :func:`fit_frame` places its image (nearest neighbour, padding = void)."""
    p = Letterbox(size).placement((labels.shape[0], labels.shape[1]))
    out = np.full(size, void, dtype=labels.dtype)
    out[p.top : p.top + p.height, p.left : p.left + p.width] = cv2.resize(
        labels, (p.width, p.height), interpolation=cv2.INTER_NEAREST
    )
    return out


def _evenly(n: int, limit: int) -> list[int]:
    return sorted({int(i) for i in np.linspace(0, n - 1, min(n, limit))}) if n else []


def _from_folder(folder: Path, limit: int) -> list[np.ndarray]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image(p))
    if not files:
        raise PemError(
            f"--calib-data {folder} has no images ({', '.join(IMAGE_SUFFIXES)}); point it at a "
            "folder of frames or a video"
        )
    frames = []
    for i in _evenly(len(files), limit):
        img = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
        if img is None:
            raise PemError(f"cannot read image {files[i]}; remove it or re-save it as PNG/JPEG")
        frames.append(img)
    return frames


def _from_video(path: Path, limit: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        if count <= 0:
            raise PemError(f"--calib-data {path} is not a readable video (OpenCV/FFmpeg could not open it)")
        frames = []
        for i in _evenly(count, limit):
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
            if ok:
                frames.append(frame)
        if not frames:
            raise PemError(f"--calib-data {path}: no frame could be decoded; re-encode the video (H.264/MP4)")
        return frames
    finally:
        cap.release()


def _from_skimage(limit: int) -> list[np.ndarray]:
    import skimage.data

    frames = []
    for name in SKIMAGE_PHOTOS:
        loaded = getattr(skimage.data, name)()
        for img in loaded[:2] if isinstance(loaded, tuple) else (loaded,):  # stereo pair: both views
            frames.append(_to_bgr(img))
    return [frames[i] for i in _evenly(len(frames), limit)]


def skimage_photos(limit: int = 16) -> list[np.ndarray]:
    """Up to ``limit`` of scikit-image's bundled photographs as BGR uint8 frames (native sizes)."""
    return _from_skimage(limit)


def _to_bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return cv2.cvtColor(np.ascontiguousarray(img[..., :3]).astype(np.uint8), cv2.COLOR_RGB2BGR)


def read_frames(source: str | Path, size: tuple[int, int], limit: int) -> np.ndarray:
    """Up to ``limit`` frames, evenly spread over the source, as uint8 BGR [N, H, W, 3] at ``size``."""
    if str(source) == "skimage":
        frames = _from_skimage(limit)
    else:
        path = Path(source)
        if path.is_dir():
            frames = _from_folder(path, limit)
        elif path.is_file():
            frames = _from_video(path, limit)
        else:
            raise PemError(f"--calib-data {path} does not exist; pass an image folder, a video or 'skimage'")
    return np.stack([fit_frame(f, size) for f in frames])
