"""The tiled preview of a multi-stream run: every source's overlay in one picture, each captioned.

    +-----------+-----------+
    | 0 camera  | 1 clip    |   a grid of ceil(sqrt(n)) columns; each tile keeps its frame's aspect
    +-----------+-----------+   ratio (letterboxed on black) under a caption bar with the source's
    | 2 rtsp:// | 3 ended   |   number, name and FPS; a source that ended keeps its last frame, dimmed,
    +-----------+-----------+   captioned "ended"; a source with no frame yet is a dark "waiting" tile

The tile size is fixed by the largest frame of the first picture (scaled so the whole grid fits
``max_size``, 1080x1920 by default, and small frames up to ``MIN_TILE_WIDTH`` so captions stay legible),
so a recording of the preview keeps one size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
MAX_SIZE = (1080, 1920)  # (height, width) of the whole grid
GAP = 2  # pixels between tiles
MIN_TILE_WIDTH = 480  # smaller frames are scaled up to this (when the grid still fits)


def grid(count: int) -> tuple[int, int]:
    """(rows, columns) for ``count`` tiles: as square as possible, wider than tall."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return max(1, math.ceil(count / cols)), cols


class Tiles:
    """Args: count of sources; max_size (height, width) the grid must fit."""

    def __init__(self, count: int, max_size: tuple[int, int] = MAX_SIZE) -> None:
        self.count = count
        self.rows, self.cols = grid(count)
        self.max_size = max_size
        self.tile: tuple[int, int] | None = None  # (height, width), set by the first frame

    def fit(self, frame_size: tuple[int, int]) -> tuple[int, int]:
        """(height, width) a frame of ``frame_size`` takes inside a tile (aspect ratio kept)."""
        assert self.tile is not None, "fix_size first"
        th, tw = self.tile
        h, w = frame_size
        scale = min(th / h, tw / w)
        return max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))

    def fix_size(self, frames: list[np.ndarray]) -> tuple[int, int]:
        """The tile size: set by the largest of ``frames`` on the first call, kept after."""
        if self.tile is None:
            h, w = max((f.shape[:2] for f in frames), key=lambda hw: hw[0] * hw[1])
            max_h = (self.max_size[0] - GAP * (self.rows - 1)) / self.rows
            max_w = (self.max_size[1] - GAP * (self.cols - 1)) / self.cols
            scale = min(max(1.0, MIN_TILE_WIDTH / w), max_h / h, max_w / w)
            self.tile = (max(16, round(h * scale) // 2 * 2), max(16, round(w * scale) // 2 * 2))
        return self.tile

    def compose(
        self, images: list[np.ndarray | None], captions: list[str], ended: list[bool]
    ) -> np.ndarray | None:
        """The grid of ``images`` (None: no frame yet); None until some source has a frame."""
        present = [im for im in images if im is not None]
        if not present:
            return None
        th, tw = self.fix_size(present)
        height = self.rows * th + GAP * (self.rows - 1)
        width = self.cols * tw + GAP * (self.cols - 1)
        out = np.full((height, width, 3), 48, dtype=np.uint8)  # the gaps: dark grey lines
        for i in range(self.count):
            r, c = divmod(i, self.cols)
            y, x = r * (th + GAP), c * (tw + GAP)
            view = out[y : y + th, x : x + tw]
            image = images[i] if i < len(images) else None
            if image is None:
                view[:] = 16
                self._caption(view, captions[i] if i < len(captions) else str(i), "waiting")
                continue
            self._fit(image, view)
            if ended[i]:
                view[:] = (view.astype(np.uint16) * 2 // 5).astype(np.uint8)
            self._caption(view, captions[i], "ended" if ended[i] else "")
        return out

    def _fit(self, image: np.ndarray, view: np.ndarray) -> None:
        """Letterbox ``image`` into ``view`` on black (area filter when shrinking)."""
        th, tw = view.shape[:2]
        h, w = image.shape[:2]
        nh, nw = self.fit((h, w))
        interp = cv2.INTER_AREA if nh < h else cv2.INTER_LINEAR
        resized = image if (nh, nw) == (h, w) else cv2.resize(image, (nw, nh), interpolation=interp)
        view[:] = 0
        top, left = (th - nh) // 2, (tw - nw) // 2
        view[top : top + nh, left : left + nw] = resized

    @staticmethod
    def _caption(view: np.ndarray, text: str, state: str) -> None:
        """A translucent bar along the tile's bottom with ``text`` (and ``state`` at the right)."""
        th, tw = view.shape[:2]
        scale = float(np.clip(th / 600.0, 0.35, 0.8))
        thick = 1
        (_, text_h), base = cv2.getTextSize("Hg", FONT, scale, thick)
        bar = text_h + base + 6
        roi = view[th - bar :, :]
        roi[:] = (roi.astype(np.uint16) * 2 // 7).astype(np.uint8)
        right = 0
        if state:
            (sw, _), _ = cv2.getTextSize(state, FONT, scale, thick)
            right = sw + 8
            colour = (80, 180, 255) if state == "ended" else (200, 200, 200)
            cv2.putText(view, state, (tw - sw - 4, th - base - 3), FONT, scale, colour, thick, cv2.LINE_AA)
        while text and cv2.getTextSize(text, FONT, scale, thick)[0][0] > tw - 8 - right:
            text = text[:-2] + "~" if len(text) > 2 else ""
        cv2.putText(view, text, (4, th - base - 3), FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
