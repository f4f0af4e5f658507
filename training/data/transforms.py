"""Training augmentation as the PEM reference configures it (detectron2 semantics), on numpy arrays.

Order: random resize of the short side (a choice of 0.5, 0.6, ..., 2.0 x ``base_size``, long side at
most 4 x ``base_size``) -> random crop (at most ``crop``) -> SSD-style photometric jitter -> horizontal
flip. Label maps are resized with nearest neighbour and never blended. Every random draw comes from the
``rng`` passed in, so a sample's augmentation is a pure function of its seed (bit-exact resume).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Args:
    crop: (H, W) crop; images smaller than it after resizing are padded later (collate).
    base_size: short side at scale 1.0 (Cityscapes 1024, ADE20K 512).
    scale_range: min and max scale of the short side; scales step by 0.1 like the reference.
    flip: random horizontal flip.
    color: SSD photometric jitter (brightness, contrast, saturation, hue).
    """

    crop: tuple[int, int]
    base_size: int
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    color: bool = True

    def short_sides(self) -> list[int]:
        lo, hi = self.scale_range
        steps = round((hi - lo) / 0.1) + 1
        return sorted({max(1, int(self.base_size * (lo + 0.1 * i))) for i in range(steps)})


def resize_nearest(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize sampling at pixel centres (any integer dtype)."""
    h, w = label.shape[:2]
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    return label[rows[:, None], cols[None, :]]


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def shortest_edge_size(h: int, w: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2's ResizeShortestEdge output size."""
    scale = short / min(h, w)
    nh, nw = h * scale, w * scale
    if max(nh, nw) > max_size:
        scale = max_size / max(nh, nw)
        nh, nw = nh * scale, nw * scale
    return int(nh + 0.5), int(nw + 0.5)


def _convert(x: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def color_jitter_ssd(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SSD photometric distortion (detectron2's ColorAugSSDTransform) on an RGB uint8 image:
    brightness +-32, then contrast [0.5, 1.5] before or after saturation [0.5, 1.5] and hue +-18,
    each applied with probability 1/2."""
    bgr = np.ascontiguousarray(image[:, :, ::-1])

    def contrast(img: np.ndarray) -> np.ndarray:
        return _convert(img, alpha=rng.uniform(0.5, 1.5)) if rng.integers(2) else img

    def saturation(img: np.ndarray) -> np.ndarray:
        if rng.integers(2):
            hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
            hsv[:, :, 1] = _convert(hsv[:, :, 1], alpha=rng.uniform(0.5, 1.5))
            return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return img

    def hue(img: np.ndarray) -> np.ndarray:
        if rng.integers(2):
            hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
            hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int32) + int(rng.integers(-18, 19))) % 180).astype(
                np.uint8
            )
            return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return img

    if rng.integers(2):
        bgr = _convert(bgr, beta=rng.uniform(-32, 32))
    # contrast first or last, as the SSD recipe does
    bgr = hue(saturation(contrast(bgr))) if rng.integers(2) else contrast(hue(saturation(bgr)))
    return np.ascontiguousarray(bgr[:, :, ::-1])


def augment(
    image: np.ndarray, labels: list[np.ndarray], cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Apply resize -> crop -> colour -> flip to an RGB image and its label maps (same geometry)."""
    h, w = image.shape[:2]
    short = int(rng.choice(cfg.short_sides()))
    size = shortest_edge_size(h, w, short, 4 * cfg.base_size)
    if size != (h, w):
        image = resize_image(image, size)
        labels = [resize_nearest(lab, size) for lab in labels]
    h, w = image.shape[:2]
    ch, cw = min(cfg.crop[0], h), min(cfg.crop[1], w)
    y0 = int(rng.integers(h - ch + 1))
    x0 = int(rng.integers(w - cw + 1))
    image = image[y0 : y0 + ch, x0 : x0 + cw]
    labels = [lab[y0 : y0 + ch, x0 : x0 + cw] for lab in labels]
    if cfg.color:
        image = color_jitter_ssd(image, rng)
    if cfg.flip and rng.integers(2):
        image = image[:, ::-1]
        labels = [lab[:, ::-1] for lab in labels]
    return np.ascontiguousarray(image), [np.ascontiguousarray(lab) for lab in labels]
