"""Inference post-processing from per-query class logits and mask logits, as the PEM reference does it.

All functions but :func:`semantic_scores` and :func:`semantic_labels_at` take mask logits already resized
to the output size (see :func:`resize_masks`).
"""

from __future__ import annotations

import math
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


def semantic_scores(class_logits: Tensor, mask_logits: Tensor, size: tuple[int, int], fast: bool) -> Tensor:
    """Per-class scores [B, K, H, W] at ``size`` from mask logits at mask resolution [B, Q, h, w].

    Exact (the reference): every query's mask logits are up-sampled to ``size`` first, then combined.
    Fast: the scores are combined at mask resolution and only the K score maps are up-sampled (bilinear,
    like the masks), which moves K instead of Q maps through memory; where K > Q that saves nothing, so
    the exact order is kept. The two differ only where the sigmoid's curvature matters between mask pixels.
    """
    num_classes = class_logits.shape[-1] - 1
    if fast and num_classes <= mask_logits.shape[1]:
        return resize_masks(semantic_probabilities(class_logits, mask_logits), size)
    return semantic_probabilities(class_logits, resize_masks(mask_logits, size))


# Share of a frame's cells (the spans between four mask pixels) that fast computes exactly: the cells on
# edges between classes, in raster order. Measured on the demo model: 16-25 % of the cells hold an edge
# (at most 38 % on a photograph at 128x256); cells past the share keep their corner's label.
EDGE_CELL_SHARE = 0.4


def _pad_edges(x: Tensor) -> Tensor:
    """Repeat the first and last row and column of [..., h, w]: what bilinear resizing reads past a border."""
    x = torch.cat([x[..., :1, :], x, x[..., -1:, :]], dim=-2)
    return torch.cat([x[..., :1], x, x[..., -1:]], dim=-1)


def _cell_weights(factor: int) -> tuple[int, list[float]]:
    """Bilinear up-sampling by an integer ``factor`` (half-pixel, as :func:`resize_masks`), seen on the
    grid of a border-padded input: output pixel ``u - offset`` lies in cell ``u // factor`` (between padded
    input pixels ``i`` and ``i + 1``) at fraction ``fractions[u % factor]`` from ``i``."""
    offset = (factor + 1) // 2
    return offset, [(t - offset + 0.5) / factor + 0.5 for t in range(factor)]


def _first_cells(mixed: Tensor, capacity: int) -> tuple[Tensor, Tensor]:
    """The first ``capacity`` True cells of each row of ``mixed`` [B, M] in raster order, as (cell, row)
    indices [B * capacity]; a row with fewer repeats its cell 0 (computing a cell twice changes nothing).
    Static shapes (a cumulative sum and a scatter, no NonZero): TensorRT-RTX builds it."""
    n, m = mixed.shape
    capacity = min(capacity, m - 1)
    rank = mixed.long().cumsum(dim=1) - 1
    slot = torch.where(mixed & (rank < capacity), rank, m - 1)  # the rest land in a dropped slot
    cells = torch.arange(m, device=mixed.device).unsqueeze(0).expand(n, m)
    # as wide as the indices (TensorRT's scatter needs that); the slots from ``capacity`` on are dropped
    first = torch.zeros(n, m, dtype=torch.long, device=mixed.device).scatter(1, slot, cells)
    rows = torch.arange(n, device=mixed.device).unsqueeze(1).expand(n, capacity)
    return first[:, :capacity].flatten(), rows.flatten()


@dataclass(frozen=True)
class Cells:
    """Up-sampling by integer factors seen as cells: cell (i, j) spans padded mask pixels (i, j) .. (i+1,
    j+1) and holds ``fy x fx`` frame pixels; the frame starts at ``offset`` on the canvas of all cells.
    ``cell`` [B * capacity] (within its frame) and ``frame`` [B * capacity] name the edge cells (the
    first :data:`EDGE_CELL_SHARE` of the cells whose corners disagree), ``logits`` [B, capacity * fy * fx,
    Q] are the up-sampled mask logits of their frame pixels, ``weights`` [fy * fx, 4] the bilinear weights
    of a cell's four corners (top-left, top-right, bottom-left, bottom-right)."""

    shape: tuple[int, int, int, int]  # B, h + 1, w + 1 cells, Q
    factors: tuple[int, int]
    offset: tuple[int, int]
    cell: Tensor
    frame: Tensor
    logits: Tensor
    weights: Tensor

    @staticmethod
    def of(low: Tensor, mask_logits: Tensor, size: tuple[int, int]) -> Cells | None:
        """The cells of ``low`` [B, h, w] (labels or winning queries at mask resolution) at ``size``;
        None when ``size`` is not an integer multiple of the mask resolution."""
        n, q, h, w = mask_logits.shape
        if size[0] % h or size[1] % w:
            return None
        fy, fx = size[0] // h, size[1] // w
        (oy, wy), (ox, wx) = _cell_weights(fy), _cell_weights(fx)
        pad = _pad_edges(low)  # [B, h+2, w+2]
        corner = pad[:, :-1, :-1]
        mixed = (corner != pad[:, :-1, 1:]) | (corner != pad[:, 1:, :-1]) | (corner != pad[:, 1:, 1:])
        cells = (h + 1) * (w + 1)
        cell, frame = _first_cells(mixed.view(n, cells), max(1, math.ceil(EDGE_CELL_SHARE * cells)))
        i, j = cell // (w + 1), cell % (w + 1)
        table = _pad_edges(mask_logits).permute(0, 2, 3, 1).reshape(-1, q)  # Q logits per padded pixel
        top = frame * ((h + 2) * (w + 2)) + i * (w + 2) + j
        taps = torch.stack([top, top + 1, top + (w + 2), top + (w + 3)], dim=1)  # [C, 4]
        corners = table.index_select(0, taps.flatten()).view(-1, 4, q)  # [C, 4, Q]
        weights = torch.tensor(
            [[(1 - a) * (1 - c), (1 - a) * c, a * (1 - c), a * c] for a in wy for c in wx],
            dtype=mask_logits.dtype, device=mask_logits.device,
        )  # fmt: skip
        logits = torch.matmul(weights, corners).view(n, -1, q)  # the edge cells' frame pixels, up-sampled
        return Cells((n, h + 1, w + 1, q), (fy, fx), (oy, ox), cell, frame, logits, weights)

    def inside(self, values: Tensor) -> Tensor:
        """``values`` [B, h, w] at mask resolution -> [B, cells, fy * fx]: each cell's top-left value on
        all its pixels (inside a cell of one value, that value)."""
        n, ch, cw, _ = self.shape
        corner = _pad_edges(values)[:, :-1, :-1].reshape(n, ch * cw, 1)
        return corner.expand(-1, -1, self.factors[0] * self.factors[1])

    def upsample_corners(self, values: Tensor) -> Tensor:
        """``values`` [B, h, w] at mask resolution -> [B, cells, fy * fx], bilinearly, in cell layout."""
        padded = _pad_edges(values)
        taps = torch.stack(
            [padded[:, :-1, :-1], padded[:, :-1, 1:], padded[:, 1:, :-1], padded[:, 1:, 1:]], dim=-1
        ).flatten(1, 2)  # [B, cells, 4]
        return torch.matmul(taps, self.weights.t())

    def paint(self, inside: Tensor, edges: Tensor, size: tuple[int, int]) -> Tensor:
        """The frame [B, H, W] from per-cell values ``inside`` [B, cells, fy * fx] with the edge cells'
        pixels ``edges`` [B, capacity * fy * fx] written over them."""
        n, ch, cw, _ = self.shape
        fy, fx = self.factors
        rows = self.frame * (ch * cw) + self.cell
        canvas = inside.reshape(n * ch * cw, fy * fx).index_put((rows,), edges.reshape(-1, fy * fx))
        canvas = canvas.view(n, ch, cw, fy, fx).permute(0, 1, 3, 2, 4).reshape(n, ch * fy, cw * fx)
        oy, ox = self.offset
        return canvas[:, oy : oy + size[0], ox : ox + size[1]]


def semantic_labels_at(
    class_logits: Tensor, mask_logits: Tensor, size: tuple[int, int], fast: bool
) -> Tensor:
    """Label map [B, H, W] (int64) at ``size`` from mask logits at mask resolution [B, Q, h, w].

    Exact: the argmax of the exact :func:`semantic_scores`. Fast (``size`` an integer multiple of the mask
    resolution, else exact): the labels are taken at mask resolution; the frame pixels between four mask
    pixels of one label (a cell) take that label, and only the cells that hold an edge between classes
    are computed as exact computes them, from the Q mask logits of their four corners: at most
    :data:`EDGE_CELL_SHARE` of the cells, so the work is fixed, Q x K per mask pixel plus Q x K per frame
    pixel of that share, instead of Q x K per frame pixel.
    """
    low = semantic_probabilities(class_logits, mask_logits).argmax(dim=1) if fast else None
    cells = None if low is None else Cells.of(low, mask_logits, size)
    if low is None or cells is None:
        return semantic_scores(class_logits, mask_logits, size, fast=False).argmax(dim=1)
    probs = F.softmax(class_logits, dim=-1)[..., :-1]  # [B, Q, K]
    edges = torch.matmul(cells.logits.sigmoid(), probs).argmax(dim=2)  # [B, capacity * fy * fx]
    return cells.paint(cells.inside(low), edges, size)


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
