"""What people see: the frame under the model's colours, segment outlines, a class legend and a HUD.

- colours: the dataset palette blended with ``alpha`` (void pixels keep the frame); panoptic "thing"
  segments get a per-instance shade of their class colour so neighbouring cars stay apart;
- outlines: a light line where the class (semantic) or segment (panoptic) changes;
- legend: the classes in view, largest first, with swatch and share of the frame;
- HUD: model, backend, FPS and latency (total and per stage), dropped frames.
Everything scales with the frame height; on tiny frames the HUD shrinks to one line and the legend
is left out when it cannot fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pem_rt.model_meta import ModelMeta
from pem_rt.segments import VOID

if TYPE_CHECKING:
    from runtime.segmenter import Result  # types only: segmenter imports the stream loop (Segmenter.stream)

FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class HudStats:
    fps: float = 0.0
    latency_ms: float = 0.0  # end to end, capture -> shown
    infer_ms: float = 0.0
    frames: int = 0
    dropped: int = 0
    backend: str = ""


def _shade(colour: np.ndarray, key: int) -> np.ndarray:
    """A deterministic lighter/darker variant of ``colour`` for instance ``key``."""
    factor = 0.65 + 0.7 * ((key * 0.618034) % 1.0)
    return np.clip(colour.astype(np.float32) * factor + (factor - 1) * 40, 0, 255).astype(np.uint8)


class Overlay:
    """Args:
    meta: the model's classes and palette.
    alpha: opacity of the class colours (0 = frame only, 1 = colours only).
    hud: draw the HUD and legend.
    outlines: draw segment outlines.
    """

    def __init__(self, meta: ModelMeta, alpha: float = 0.5, hud: bool = True, outlines: bool = True) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be within 0..1, got {alpha}")
        self.meta, self.alpha, self.hud, self.outlines = meta, alpha, hud, outlines
        self.lut = np.zeros((VOID + 1, 3), dtype=np.uint8)
        for k, rgb in enumerate(meta.palette[:VOID]):
            self.lut[k] = rgb[::-1]
        self.things = set(meta.thing_ids)
        self.title = f"PEM {meta.name} | {meta.task} {meta.input_height}x{meta.input_width}"

    def colours(self, result: Result) -> tuple[np.ndarray, np.ndarray]:
        """BGR colour image of the result and the map whose changes are outlined."""
        if result.panoptic is None or result.segments is None:
            return self.lut[result.labels], result.labels
        seg_lut = np.zeros((len(result.segments) + 1, 3), dtype=np.uint8)
        for s in result.segments:
            base = self.lut[s.category_id]
            seg_lut[s.id] = _shade(base, s.id) if s.isthing else base
        return seg_lut[result.panoptic], result.panoptic

    def render(self, frame: np.ndarray, result: Result, stats: HudStats | None = None) -> np.ndarray:
        colour, regions = self.colours(result)
        out = cv2.addWeighted(frame, 1.0 - self.alpha, colour, self.alpha, 0.0)
        void = result.labels == VOID
        if void.any():
            np.copyto(out, frame, where=void[:, :, None])  # 10x faster than out[void] = frame[void]
        if self.outlines and self.alpha > 0:
            edge = np.zeros(regions.shape, dtype=bool)
            edge[1:, :] |= regions[1:, :] != regions[:-1, :]
            edge[:, 1:] |= regions[:, 1:] != regions[:, :-1]
            out[edge] = (out[edge].astype(np.uint16) + 2 * 235) // 3
        if self.hud:
            self._legend(out, result.labels)
            if stats is not None:
                self._hud(out, stats)
        return out

    # text helpers -----------------------------------------------------------------------------------
    def _scale(self, height: int) -> tuple[float, int, int]:
        """Font scale, thickness and line height for a frame of ``height`` pixels."""
        scale = float(np.clip(height / 1100.0, 0.3, 1.1))
        thick = 1 if scale < 0.75 else 2
        line = int(cv2.getTextSize("Hg", FONT, scale, thick)[0][1] * 2.0) + 2
        return scale, thick, line

    @staticmethod
    def _panel(img: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
        """Darken a rectangle (a translucent panel behind text)."""
        h, w = img.shape[:2]
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 > x0 and y1 > y0:
            roi = img[y0:y1, x0:x1]
            roi[:] = (roi.astype(np.uint16) * 2 // 7).astype(np.uint8)

    def _text(
        self,
        img: np.ndarray,
        text: str,
        org: tuple[int, int],
        scale: float,
        thick: int,
        colour: tuple[int, int, int] = (255, 255, 255),
    ) -> None:
        cv2.putText(img, text, org, FONT, scale, colour, thick, cv2.LINE_AA)

    def _hud(self, img: np.ndarray, s: HudStats) -> None:
        h, w = img.shape[:2]
        scale, thick, line = self._scale(h)
        pad = max(2, line // 3)
        speed = f"{s.fps:5.1f} FPS  {s.latency_ms:6.1f} ms"
        if h < 240:  # tiny frames: one line
            (width, text_h), base = cv2.getTextSize(speed, FONT, scale, thick)
            self._panel(img, 0, 0, width + 2 * pad, text_h + base + 2 * pad)
            self._text(img, speed, (pad, pad + text_h), scale, thick, (120, 255, 160))
            return
        lines = [
            (self.title, (255, 255, 255)),
            (f"{speed}  (infer {s.infer_ms:.1f} ms)", (120, 255, 160)),
            (f"{s.backend}", (210, 210, 210)),
            (f"frame {s.frames}   dropped {s.dropped}", (210, 210, 210)),
        ]
        width = max(cv2.getTextSize(t, FONT, scale, thick)[0][0] for t, _ in lines)
        width = min(width, w - 2 * pad)
        self._panel(img, pad, pad, pad + width + 2 * pad, pad + len(lines) * line + pad)
        for i, (text, colour) in enumerate(lines):
            self._text(img, text, (2 * pad, pad + (i + 1) * line - pad // 2), scale, thick, colour)

    def _legend(self, img: np.ndarray, labels: np.ndarray) -> None:
        h, w = img.shape[:2]
        scale, thick, line = self._scale(h)
        counts = np.bincount(labels.ravel(), minlength=VOID + 1)[: len(self.meta.classes)]
        present = [int(k) for k in np.argsort(-counts) if counts[k] > 0]
        rows = min(len(present), max(0, (h - 2 * line) // line), 10)
        if rows == 0 or h < 120:
            return
        total = max(1, labels.size)
        names = [f"{self.meta.classes[k]} {100 * counts[k] / total:4.1f}%" for k in present[:rows]]
        text_w = max(cv2.getTextSize(n, FONT, scale, thick)[0][0] for n in names)
        swatch = line - line // 3
        pad = max(2, line // 3)
        panel_w = pad + swatch + pad + text_w + pad
        if panel_w > w // 2:
            return
        x0, y0 = w - panel_w - pad, pad
        self._panel(img, x0, y0, x0 + panel_w, y0 + rows * line + pad)
        for i, (k, name) in enumerate(zip(present[:rows], names, strict=True)):
            y = y0 + pad + i * line
            colour = tuple(int(c) for c in self.lut[k])
            cv2.rectangle(img, (x0 + pad, y), (x0 + pad + swatch, y + swatch), colour, -1)
            cv2.rectangle(img, (x0 + pad, y), (x0 + pad + swatch, y + swatch), (255, 255, 255), 1)
            self._text(img, name, (x0 + 2 * pad + swatch, y + swatch - 1), scale, thick)
