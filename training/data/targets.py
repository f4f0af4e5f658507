"""Mask-classification targets of one image: ``{"labels": long [n], "masks": bool [n, H, W]}``.

Semantic: one target per class present in the label map (void excluded), as the reference's
MaskFormerSemanticDatasetMapper. Panoptic: one target per non-crowd segment; crowd and void pixels
belong to no target. Segments that augmentation cropped away entirely are dropped.
"""

from __future__ import annotations

import numpy as np
import torch

from training.data.records import IGNORE, SegmentInfo

Target = dict[str, torch.Tensor]


def semantic_targets(label: np.ndarray, ignore: int = IGNORE) -> Target:
    classes = np.unique(label)
    classes = classes[classes != ignore]
    masks = label[None] == classes[:, None, None]
    return {
        "labels": torch.as_tensor(classes.astype(np.int64)),
        "masks": torch.from_numpy(np.ascontiguousarray(masks)),
    }


def panoptic_targets(ids: np.ndarray, segments: list[SegmentInfo]) -> Target:
    present = set(np.unique(ids).tolist())
    kept = [s for s in segments if not s.iscrowd and s.id in present and s.id != 0]
    masks = (
        ids[None] == np.array([s.id for s in kept], dtype=ids.dtype)[:, None, None]
        if kept
        else np.zeros((0, *ids.shape), dtype=bool)
    )
    return {
        "labels": torch.tensor([s.category for s in kept], dtype=torch.int64),
        "masks": torch.from_numpy(np.ascontiguousarray(masks)),
    }
