"""Inference post-processing from per-query class logits and mask logits, as the PEM reference does it.

All functions take mask logits already resized to the output size (see :func:`resize_masks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from pem_rt.segments import Segment


def resize_masks(mask_logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize mask logits [..., Q, h, w] to ``size`` (align_corners=False)."""
    return F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)


def semantic_probabilities(class_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """[B, Q, K+1] x [B, Q, H, W] -> per-class scores [B, K, H, W]: softmax(classes)[:-1] . sigmoid(masks)."""
    probs = F.softmax(class_logits, dim=-1)[..., :-1]
    return torch.einsum("bqk,bqhw->bkhw", probs, mask_logits.sigmoid())


def semantic_labels(class_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """Label map [B, H, W] (int64): argmax of :func:`semantic_probabilities`."""
    return semantic_probabilities(class_logits, mask_logits).argmax(dim=1)


def panoptic_inference(
    class_logits: Tensor,
    mask_logits: Tensor,
    thing_ids: tuple[int, ...] | frozenset[int],
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
) -> tuple[Tensor, list[Segment]]:
    """One image: [Q, K+1], [Q, H, W] -> (segment map int32 [H, W], 0 = void; segments).

    Queries whose best class is a real class with score > ``object_mask_threshold`` compete per pixel
    by ``score * sigmoid(mask)``; a query keeps its pixels only where its own mask >= 0.5, and is dropped
    when it keeps less than ``overlap_threshold`` of its mask; stuff segments of one class merge.
    """
    num_classes = class_logits.shape[-1] - 1
    scores, labels = F.softmax(class_logits, dim=-1).max(-1)
    masks = mask_logits.sigmoid()
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores, cur_classes, cur_masks = scores[keep], labels[keep], masks[keep]
    h, w = masks.shape[-2:]
    panoptic = torch.zeros((h, w), dtype=torch.int32, device=masks.device)
    segments: list[Segment] = []
    if cur_masks.shape[0] == 0:
        return panoptic, segments
    winner = (cur_scores.view(-1, 1, 1) * cur_masks).argmax(0)
    things = set(thing_ids)
    stuff_segment: dict[int, int] = {}
    next_id = 0
    for k in range(cur_classes.shape[0]):
        cls = int(cur_classes[k])
        isthing = cls in things
        won = winner == k
        own = cur_masks[k] >= 0.5
        mask = won & own
        mask_area, original_area, final_area = int(won.sum()), int(own.sum()), int(mask.sum())
        if mask_area == 0 or original_area == 0 or final_area == 0:
            continue
        if mask_area / original_area < overlap_threshold:
            continue
        if not isthing:
            if cls in stuff_segment:
                panoptic[mask] = stuff_segment[cls]
                continue
            stuff_segment[cls] = next_id + 1
        next_id += 1
        panoptic[mask] = next_id
        segments.append(Segment(next_id, cls, isthing))
    return panoptic, segments


@dataclass
class Instances:
    """Instance predictions of one image: binary masks [k, H, W], scores [k], class ids [k]."""

    masks: Tensor
    scores: Tensor
    labels: Tensor


def instance_inference(
    class_logits: Tensor, mask_logits: Tensor, top_k: int, thing_ids: tuple[int, ...] | None = None
) -> Instances:
    """One image: the ``top_k`` best (query, class) pairs; score = class prob x mean mask prob inside the
    mask. With ``thing_ids`` (panoptic models) only thing classes are kept."""
    q, k1 = class_logits.shape
    num_classes = k1 - 1
    probs = F.softmax(class_logits, dim=-1)[:, :-1]
    labels = torch.arange(num_classes, device=class_logits.device).repeat(q)
    scores, idx = probs.flatten().topk(min(top_k, probs.numel()), sorted=False)
    labels = labels[idx]
    masks = mask_logits[torch.div(idx, num_classes, rounding_mode="floor")]
    if thing_ids is not None:
        keep = torch.isin(labels, torch.tensor(thing_ids, device=labels.device))
        scores, labels, masks = scores[keep], labels[keep], masks[keep]
    binary = (masks > 0).float()
    mask_scores = (masks.sigmoid().flatten(1) * binary.flatten(1)).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return Instances(binary.bool(), scores * mask_scores, labels)
