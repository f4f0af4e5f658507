"""Matcher and criterion: the assignment is optimal, costs and losses equal their definitions, and
perfect predictions cost (much) less than wrong ones."""

from __future__ import annotations

import itertools

import torch
from torch.nn import functional as F

from training.losses.criterion import LossConfig, SetCriterion, dice_loss, sigmoid_ce_loss
from training.losses.matcher import HungarianMatcher, pairwise_dice, pairwise_sigmoid_ce
from training.losses.point_sampling import grid_coords, point_sample, uncertain_coords
from training.model.pem import PEMOutput
from training.model.transformer_decoder import Prediction


def _targets(g: torch.Generator, n: int, h: int = 16, w: int = 16) -> dict[str, torch.Tensor]:
    regions = torch.randint(0, n, (h // 4, w // 4), generator=g)
    regions[:n, 0] = torch.arange(n)  # every target has pixels
    regions = regions.repeat_interleave(4, 0).repeat_interleave(4, 1)  # 4x4 blocks: exact at 1/4 scale
    return {
        "labels": torch.randperm(7, generator=g)[:n],
        "masks": regions[None] == torch.arange(n)[:, None, None],
    }


def test_pairwise_costs_equal_per_pair_losses() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 40, generator=g)
    targets = (torch.rand(3, 40, generator=g) > 0.5).float()
    ce, dice = pairwise_sigmoid_ce(logits, targets), pairwise_dice(logits, targets)
    for i, j in itertools.product(range(5), range(3)):
        torch.testing.assert_close(ce[i, j], F.binary_cross_entropy_with_logits(logits[i], targets[j]))
        torch.testing.assert_close(dice[i, j], dice_loss(logits[i : i + 1], targets[j : j + 1], 1.0))


def test_matcher_is_optimal_against_brute_force() -> None:
    g = torch.Generator().manual_seed(1)
    matcher = HungarianMatcher(2.0, 5.0, 5.0, num_points=0)
    for _ in range(5):
        q, n = 5, 3
        target = _targets(g, n)
        class_logits = torch.randn(1, q, 8, generator=g)
        mask_logits = torch.randn(1, q, 16, 16, generator=g) * 3
        ((rows, cols),) = matcher(class_logits, mask_logits, [target])
        prob = class_logits[0].softmax(-1)
        out, tgt = mask_logits[0].flatten(1), target["masks"].flatten(1).float()
        cost = (
            -2 * prob[:, target["labels"]] + 5 * pairwise_sigmoid_ce(out, tgt) + 5 * pairwise_dice(out, tgt)
        )
        best = min(sum(float(cost[p[j], j]) for j in range(n)) for p in itertools.permutations(range(q), n))
        assert abs(float(cost[rows, cols].sum()) - best) < 1e-5
        assert sorted(cols.tolist()) == list(range(n))


def test_matcher_recovers_a_permutation_with_sampled_points() -> None:
    g = torch.Generator().manual_seed(2)
    target = _targets(g, 4)
    perm = torch.tensor([3, 0, 2, 1])  # query perm[j] predicts target j
    class_logits = torch.full((1, 6, 8), -5.0)
    mask_logits = torch.full((1, 6, 16, 16), -8.0)
    for j in range(4):
        class_logits[0, perm[j], target["labels"][j]] = 5.0
        mask_logits[0, perm[j]] = torch.where(target["masks"][j], 8.0, -8.0)
    ((rows, cols),) = HungarianMatcher(num_points=200)(class_logits, mask_logits, [target])
    assert {(int(r), int(c)) for r, c in zip(rows, cols, strict=True)} == {
        (int(perm[j]), j) for j in range(4)
    }


def test_point_sampling() -> None:
    masks = torch.arange(12.0).view(1, 1, 3, 4)
    coords = grid_coords(3, 4, 1, torch.device("cpu"))
    torch.testing.assert_close(point_sample(masks, coords), masks.flatten(1))  # pixel centres are exact
    logits = torch.linspace(-10, 10, 64).view(1, 1, 1, 64).expand(2, 1, 16, 64).contiguous()  # 0 at x = 0.5
    torch.manual_seed(0)
    pts = uncertain_coords(logits, 100, 3.0, 0.75)
    assert pts.shape == (2, 100, 2)
    dist = (pts[..., 0] - 0.5).abs()
    # the 75 importance points are the quarter of 300 candidates nearest the decision boundary
    assert float(dist[:, :75].max()) < 0.2 and float(dist[:, 75:].mean()) > 0.15


def _output(class_logits: torch.Tensor, mask_logits: torch.Tensor, aux: int) -> PEMOutput:
    return PEMOutput(class_logits, mask_logits, [Prediction(class_logits, mask_logits) for _ in range(aux)])


def test_criterion_perfect_vs_wrong_and_deep_supervision() -> None:
    g = torch.Generator().manual_seed(3)
    targets = [_targets(g, 3, 32, 32), _targets(g, 2, 32, 32)]
    q, k = 6, 7
    perfect_cls = torch.full((2, q, k + 1), -6.0)
    perfect_cls[:, :, k] = 6.0  # unmatched queries say no-object
    perfect_mask = torch.full((2, q, 8, 8), -10.0)
    for b, t in enumerate(targets):
        small = F.interpolate(t["masks"][None].float(), size=(8, 8), mode="nearest")[0]
        for j, label in enumerate(t["labels"]):
            perfect_cls[b, j] = -6.0
            perfect_cls[b, j, label] = 6.0
            perfect_mask[b, j] = torch.where(small[j] > 0.5, 10.0, -10.0)
    crit = SetCriterion(k, LossConfig(num_points=0))
    good = crit(_output(perfect_cls, perfect_mask, aux=2), targets)
    assert set(good) == {f"loss_{n}{s}" for n in ("ce", "mask", "dice") for s in ("", "_0", "_1")}
    bad = crit(
        _output(torch.randn(2, q, k + 1, generator=g), torch.randn(2, q, 8, 8, generator=g), 2), targets
    )
    assert float(crit.total(good)) < 0.3 and float(crit.total(bad)) > 10 * float(crit.total(good))
    no_ds = SetCriterion(k, LossConfig(num_points=0, deep_supervision=False))(
        _output(perfect_cls, perfect_mask, 2), targets
    )
    assert set(no_ds) == {"loss_ce", "loss_mask", "loss_dice"}


def test_criterion_weights_no_object_and_normalises_by_targets() -> None:
    k = 4
    crit = SetCriterion(k, LossConfig(num_points=0, no_object_weight=0.1))
    torch.testing.assert_close(crit.empty_weight, torch.tensor([1, 1, 1, 1, 0.1]))
    g = torch.Generator().manual_seed(4)
    targets = [_targets(g, 2, 8, 8)]
    targets[0]["labels"] = torch.tensor([0, 3])
    cls, masks = (
        torch.randn(1, 5, k + 1, generator=g),
        torch.randn(1, 5, 8, 8, generator=g, requires_grad=True),
    )
    losses = crit(_output(cls, masks, 0), targets)
    ((rows, cols),) = crit.matcher(cls, masks, targets)
    target_classes = torch.full((1, 5), k)
    target_classes[0, rows] = targets[0]["labels"][cols]
    expected_ce = F.cross_entropy(cls.transpose(1, 2), target_classes, crit.empty_weight)
    torch.testing.assert_close(losses["loss_ce"], expected_ce)
    src = masks[0, rows].flatten(1)
    tgt = targets[0]["masks"][cols].flatten(1).float()
    torch.testing.assert_close(losses["loss_mask"], sigmoid_ce_loss(src, tgt, 2.0))
    torch.testing.assert_close(losses["loss_dice"], dice_loss(src, tgt, 2.0))
    crit.total(losses).backward()
    assert masks.grad is not None and masks.grad[0, rows].abs().sum() > 0


def test_criterion_handles_images_without_targets() -> None:
    crit = SetCriterion(3, LossConfig(num_points=64))
    empty = [{"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 16, 16, dtype=torch.bool)}]
    masks = torch.randn(1, 4, 4, 4, requires_grad=True)
    losses = crit(_output(torch.randn(1, 4, 4), masks, 1), empty)
    crit.total(losses).backward()
    assert float(losses["loss_mask"].detach()) == 0.0 and torch.isfinite(crit.total(losses))
