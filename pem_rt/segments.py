"""Label maps and panoptic segments as every stage exchanges them (datasets, models, backends, files).

- Semantic label maps: uint8 [H, W] of contiguous class ids, :data:`VOID` (255) where no class applies.
- Panoptic segment maps: int32 [H, W] of segment ids, 0 = void, plus one :class:`Segment` per id.
- Panoptic PNGs (COCO's encoding): RGB with id = R + 256 G + 256^2 B.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOID = 255  # label-map value of pixels without a class (ground truth, predictions, padding)


@dataclass(frozen=True)
class Segment:
    """A predicted panoptic segment: ``id`` in the segment map, its contiguous class, thing or stuff."""

    id: int
    category_id: int
    isthing: bool


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG colours uint8 [H, W, 3] (RGB) -> int32 segment ids: id = R + 256 G + 256^2 B."""
    c = rgb.astype(np.int32)
    return c[..., 0] + 256 * c[..., 1] + 256 * 256 * c[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_id`: int segment ids [H, W] -> uint8 RGB [H, W, 3]."""
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)
