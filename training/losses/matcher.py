"""Hungarian matching of predictions to targets (Mask2Former's HungarianMatcher, as PEM uses it).

Cost = w_class * (-p(target class)) + w_mask * sigmoid-BCE + w_dice * dice, the mask costs computed on
``num_points`` random points shared by all masks of an image (0 = every pixel of the prediction grid);
solved per image with scipy's linear_sum_assignment.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torch.nn import functional as F

from training.losses.point_sampling import at_least_fp32, grid_coords, point_sample

Match = tuple[Tensor, Tensor]


def pairwise_sigmoid_ce(logits: Tensor, targets: Tensor) -> Tensor:
    """[N, P] logits, [M, P] binary targets -> [N, M] mean BCE of every pair."""
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    return (pos @ targets.T + neg @ (1 - targets).T) / logits.shape[1]


def pairwise_dice(logits: Tensor, targets: Tensor) -> Tensor:
    """[N, P] logits, [M, P] binary targets -> [N, M] dice loss of every pair (smoothing 1)."""
    probs = logits.sigmoid()
    numerator = 2 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


class HungarianMatcher:
    """Args:
    cost_class, cost_mask, cost_dice: weights of the three costs (the reference: 2, 5, 5).
    num_points: points sampled per image for the mask costs (12544 = 112^2); 0 = every pixel.
    """

    def __init__(
        self, cost_class: float = 2.0, cost_mask: float = 5.0, cost_dice: float = 5.0, num_points: int = 12544
    ) -> None:
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("all matching costs are 0")
        self.cost_class, self.cost_mask, self.cost_dice = cost_class, cost_mask, cost_dice
        self.num_points = num_points

    @torch.no_grad()
    def __call__(
        self, class_logits: Tensor, mask_logits: Tensor, targets: list[dict[str, Tensor]]
    ) -> list[Match]:
        """class_logits [B, Q, K+1], mask_logits [B, Q, h, w] -> per image (query indices, target indices)."""
        matches: list[Match] = []
        for b, target in enumerate(targets):
            labels = target["labels"]
            if labels.numel() == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                matches.append((empty, empty))
                continue
            prob = at_least_fp32(class_logits[b]).softmax(-1)
            cost_class = -prob[:, labels]
            out = at_least_fp32(mask_logits[b])[:, None]
            tgt = target["masks"].to(out)[:, None]
            if self.num_points > 0:
                coords = torch.rand(1, self.num_points, 2, device=out.device).to(out.dtype)
            else:
                coords = grid_coords(out.shape[-2], out.shape[-1], 1, out.device, out.dtype)
            tgt_points = point_sample(tgt, coords.expand(tgt.shape[0], -1, -1))
            out_points = point_sample(out, coords.expand(out.shape[0], -1, -1))
            cost = (
                self.cost_class * cost_class
                + self.cost_mask * pairwise_sigmoid_ce(out_points, tgt_points)
                + self.cost_dice * pairwise_dice(out_points, tgt_points)
            )
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            matches.append(
                (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
            )
        return matches
