"""Post-processing on hand-made logits gives the label maps and segments one works out by hand."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from training.model.postprocess import (
    Segment,
    _first_cells,
    instance_inference,
    panoptic_inference,
    resize_masks,
    semantic_labels,
    semantic_labels_at,
    semantic_scores,
)

BIG = 12.0


def class_logits(rows: list[int], num_classes: int) -> torch.Tensor:
    """One row per query: a confident vote for class ``c`` (``num_classes`` = no object)."""
    out = torch.zeros(len(rows), num_classes + 1)
    for q, c in enumerate(rows):
        out[q, c] = BIG
    return out


def box_mask(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.full((h, w), -BIG)
    m[y0:y1, x0:x1] = BIG
    return m


def test_semantic_label_map() -> None:
    cls = class_logits([0, 1, 2], num_classes=2)  # query 2 votes "no object"
    masks = torch.stack([box_mask(4, 6, 0, 4, 0, 3), box_mask(4, 6, 0, 4, 3, 6), box_mask(4, 6, 0, 4, 0, 6)])
    labels = semantic_labels(cls[None], masks[None])[0]
    expected = torch.tensor([[0, 0, 0, 1, 1, 1]] * 4)
    assert torch.equal(labels, expected)


def test_semantic_resize_then_classify() -> None:
    cls = class_logits([0, 1], num_classes=2)
    masks = torch.stack([box_mask(2, 2, 0, 2, 0, 1), box_mask(2, 2, 0, 2, 1, 2)])
    labels = semantic_labels(cls[None], resize_masks(masks[None], (4, 4)))[0]
    assert torch.equal(labels, torch.tensor([[0, 0, 1, 1]] * 4))


def _smooth_case(seed: int, batch: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class logits [B, 12, 7] and mask logits [B, 12, h, w] that vary smoothly, like a trained model's."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(batch, 12, h // 6 + 2, w // 6 + 2, generator=g) * 8
    masks = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return torch.randn(batch, 12, 7, generator=g) * 3, masks


@pytest.mark.parametrize("factors", [(4, 4), (4, 2), (3, 5), (1, 1)])
def test_fast_labels_are_exact_on_edges_between_classes(factors: tuple[int, int]) -> None:
    """fast = labels at mask resolution + the edge cells computed as exact does; up-sampling the class
    scores alone would move the edges. Inside a cell of one label the sigmoid's curvature can still tip a
    pixel: these random cases are far more curved than a trained model's masks (100.000 % there)."""
    cls, masks = _smooth_case(sum(factors), batch=3, h=24, w=40)
    size = (24 * factors[0], 40 * factors[1])
    exact = semantic_labels_at(cls, masks, size, fast=False)
    fast = semantic_labels_at(cls, masks, size, fast=True)
    assert fast.shape == exact.shape == (3, *size) and fast.dtype == torch.int64
    assert (fast == exact).float().mean() >= 0.995
    upsampled = semantic_scores(cls, masks, size, fast=True).argmax(1)
    if factors != (1, 1):
        assert (upsampled != exact).float().mean() > 0.01


def test_first_cells_fill_a_fixed_capacity_in_raster_order() -> None:
    mixed = torch.tensor([[0, 1, 1, 0, 1, 1], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    cell, row = _first_cells(mixed, capacity=3)
    assert cell.tolist() == [1, 2, 4, 5, 0, 0, 0, 0, 0]  # past the capacity: dropped; short rows: cell 0
    assert row.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert _first_cells(mixed, capacity=9)[0].tolist()[:5] == [1, 2, 4, 5, 0]  # at most all cells but one


def test_fast_labels_on_a_sharp_edge_and_a_size_that_is_no_multiple() -> None:
    cls = class_logits([0, 1], num_classes=2)
    masks = torch.stack([box_mask(6, 8, 0, 6, 0, 3), box_mask(6, 8, 0, 6, 3, 8)])[None]
    masks[:, :, :, 3] *= 0.25  # the edge between the two queries, not on a mask pixel boundary
    for size in ((24, 32), (13, 21)):
        exact = semantic_labels_at(cls[None], masks, size, fast=False)
        assert torch.equal(semantic_labels_at(cls[None], masks, size, fast=True), exact)


def test_panoptic_segments_stuff_merge_thresholds_and_overlap() -> None:
    # classes: 0 = road (stuff), 1 = car (thing); 2 = no object
    h, w = 8, 8
    rows = [0, 0, 1, 1, 1, 2, 1]
    cls = class_logits(rows, num_classes=2)
    cls[6] = torch.tensor([0.0, 1.0, 0.5])  # a car vote, but with score < 0.8: dropped
    masks = torch.stack(
        [
            box_mask(h, w, 0, 4, 0, 8),  # q0 road, top half
            box_mask(h, w, 4, 8, 0, 2),  # q1 road again, bottom-left: merges into q0's segment
            box_mask(h, w, 4, 8, 2, 5),  # q2 car
            box_mask(h, w, 4, 8, 5, 8),  # q3 car
            box_mask(h, w, 3, 8, 4, 8),  # q4 car overlapping q3 and road; loses most of its pixels
            box_mask(h, w, 0, 8, 0, 8),  # q5 no object
            box_mask(h, w, 0, 8, 0, 8),  # q6 low score
        ]
    )
    # make q4 weaker than q3 and the road so it keeps < 80% of its own mask
    masks[4][masks[4] > 0] = 2.0
    seg, segments = panoptic_inference(
        cls, masks, thing_ids=(1,), object_mask_threshold=0.8, overlap_threshold=0.8
    )
    expected = torch.zeros(h, w, dtype=torch.int32)
    expected[0:4, :] = 1
    expected[4:8, 0:2] = 1
    expected[4:8, 2:5] = 2
    expected[4:8, 5:8] = 3
    assert torch.equal(seg, expected)
    assert segments == [Segment(1, 0, False), Segment(2, 1, True), Segment(3, 1, True)]


def test_panoptic_nothing_detected() -> None:
    cls = class_logits([2, 2], num_classes=2)
    seg, segments = panoptic_inference(cls, torch.zeros(2, 4, 4), thing_ids=(1,))
    assert segments == [] and int(seg.abs().sum()) == 0


def test_panoptic_void_where_winner_mask_is_below_half() -> None:
    cls = class_logits([1], num_classes=2)
    masks = box_mask(4, 4, 0, 2, 0, 4)[None]
    seg, segments = panoptic_inference(cls, masks, thing_ids=(1,))
    assert segments == [Segment(1, 1, True)]
    assert seg[:2].eq(1).all() and seg[2:].eq(0).all()


def test_instance_top_k_scores_and_masks() -> None:
    cls = torch.tensor([[BIG, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, BIG]])  # q2: no object
    masks = torch.stack([box_mask(4, 4, 0, 2, 0, 2), box_mask(4, 4, 2, 4, 2, 4), box_mask(4, 4, 0, 4, 0, 4)])
    inst = instance_inference(cls, masks, top_k=2)
    order = inst.scores.argsort(descending=True)
    assert inst.labels[order].tolist() == [0, 1]
    assert torch.equal(inst.masks[order[0]], masks[0] > 0)
    assert torch.equal(inst.masks[order[1]], masks[1] > 0)
    assert float(inst.scores[order[0]]) > 0.99
    things_only = instance_inference(cls, masks, top_k=2, thing_ids=(1,))
    assert things_only.labels.tolist() == [1]
