"""Fit any frame to the model's static input size, and map the model's maps back to the frame.

Modes (``--resize``):
- ``letterbox`` (default): scale by min(H/h, W/w) keeping the aspect ratio (bilinear, area when
  shrinking), centre it, pad the rest with the model's mean colour (which normalises to zero, the least
  disruptive value). Results: the padded border is cut off and the map is scaled back with nearest
  neighbour, so every output pixel holds a class the model predicted.
- ``stretch``: scale both axes to the model size (aspect ratio changes), nearest neighbour back.
- ``none``: frames must already have the model size (a clear error otherwise).
A frame that already has the model size is passed through untouched in every mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pem_rt.errors import PemError

RESIZE_MODES = ("letterbox", "stretch", "none")


@dataclass(frozen=True)
class Placement:
    """Where a frame lands in the model input: rows top:top+height, columns left:left+width."""

    frame_size: tuple[int, int]  # (h, w) of the source frame
    model_size: tuple[int, int]  # (H, W) of the model input
    top: int
    left: int
    height: int
    width: int

    @property
    def identity(self) -> bool:
        return self.frame_size == self.model_size


def place(frame_size: tuple[int, int], model_size: tuple[int, int], mode: str) -> Placement:
    h, w = frame_size
    mh, mw = model_size
    if (h, w) == (mh, mw):
        return Placement(frame_size, model_size, 0, 0, mh, mw)
    if mode == "none":
        raise PemError(
            f"frame size {h}x{w} does not match the model input {mh}x{mw} and --resize is none; "
            f"use --resize letterbox (or stretch), or export the model with --size {h}x{w}"
        )
    if mode == "stretch":
        return Placement(frame_size, model_size, 0, 0, mh, mw)
    if mode != "letterbox":
        raise PemError(f"unknown --resize {mode}; choose one of {', '.join(RESIZE_MODES)}")
    scale = min(mh / h, mw / w)
    height, width = min(mh, max(1, round(h * scale))), min(mw, max(1, round(w * scale)))
    return Placement(frame_size, model_size, (mh - height) // 2, (mw - width) // 2, height, width)


class Letterbox:
    """Fits frames to the model size (a new array per frame, so frames can be prepared in one thread
    while another runs the model) and maps label maps back.

    Args:
        model_size: (H, W) of the model input.
        mode: one of RESIZE_MODES.
        pad_bgr: colour of the padding (BGR).
    """

    def __init__(
        self, model_size: tuple[int, int], mode: str = "letterbox", pad_bgr: tuple[int, ...] = (0, 0, 0)
    ):
        if mode not in RESIZE_MODES:
            raise PemError(f"unknown --resize {mode}; choose one of {', '.join(RESIZE_MODES)}")
        self.model_size = model_size
        self.mode = mode
        self.pad = np.array(pad_bgr, dtype=np.uint8)
        self._placement: Placement | None = None

    def placement(self, frame_size: tuple[int, int]) -> Placement:
        p = self._placement
        if p is None or p.frame_size != frame_size:
            p = self._placement = place(frame_size, self.model_size, self.mode)
        return p

    def apply(self, frame: np.ndarray) -> tuple[np.ndarray, Placement]:
        """BGR uint8 [h, w, 3] -> (model-sized BGR uint8 image, placement); the frame itself at model size."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise PemError(
                f"frames must be BGR uint8 [H, W, 3] (an OpenCV frame), got {frame.dtype} {list(frame.shape)}"
            )
        p = self.placement((frame.shape[0], frame.shape[1]))
        if p.identity:
            return frame, p
        shrink = p.height < frame.shape[0]
        resized = cv2.resize(
            frame, (p.width, p.height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
        if (p.height, p.width) == self.model_size:  # stretch, or a letterbox without bars
            return resized, p
        image = np.empty((*self.model_size, 3), dtype=np.uint8)
        image[: p.top] = self.pad
        image[p.top + p.height :] = self.pad
        image[p.top : p.top + p.height, : p.left] = self.pad
        image[p.top : p.top + p.height, p.left + p.width :] = self.pad
        image[p.top : p.top + p.height, p.left : p.left + p.width] = resized
        return image, p

    @staticmethod
    def unmap(model_map: np.ndarray, p: Placement) -> np.ndarray:
        """A model-sized [H, W] map -> the frame-sized map (crop the padding, nearest-neighbour resize)."""
        if p.identity:
            return model_map
        crop = np.ascontiguousarray(model_map[p.top : p.top + p.height, p.left : p.left + p.width])
        h, w = p.frame_size
        if crop.dtype not in (np.uint8, np.int32):
            crop = crop.astype(np.int32)
        # nearest-exact: pixel centres map to pixel centres (plain INTER_NEAREST is shifted by half a pixel)
        return cv2.resize(crop, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
