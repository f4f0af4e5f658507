"""The set criterion of Mask2Former/PEM: per prediction, Hungarian-match queries to targets, then
cross-entropy over classes (no-object class weighted ``no_object_weight``) plus sigmoid-BCE and dice on
the matched masks, evaluated on points chosen by importance sampling. Deep supervision applies the same
losses, with their own matching, to every earlier decoder prediction.

The mask losses are normalised by the number of target masks averaged over all processes (so DDP
gradients equal a single process's on the same global batch when ranks hold equally many targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

from training.losses.matcher import HungarianMatcher, Match
from training.losses.point_sampling import at_least_fp32, grid_coords, point_sample, uncertain_coords
from training.model.pem import PEMOutput


@dataclass(frozen=True)
class LossConfig:
    """Args (the reference's values as defaults):
    class_weight, mask_weight, dice_weight: loss (and matching cost) weights.
    no_object_weight: CE weight of the no-object class.
    num_points: points per mask for the losses and the matcher (0 = every pixel, no sampling).
    oversample_ratio, importance_sample_ratio: importance sampling of the loss points.
    deep_supervision: also supervise every earlier decoder prediction.
    """

    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    deep_supervision: bool = True


def sigmoid_ce_loss(logits: Tensor, targets: Tensor, num_masks: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1).sum() / num_masks


def dice_loss(logits: Tensor, targets: Tensor, num_masks: float) -> Tensor:
    probs = logits.sigmoid()
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


class SetCriterion(nn.Module):
    """Losses of a :class:`~training.model.pem.PEMOutput` against per-image targets.

    ``forward`` returns the unweighted losses by name (``loss_ce``, ``loss_mask``, ``loss_dice`` for the
    final prediction, ``..._i`` for earlier prediction i); :meth:`total` weights and sums them.
    """

    def __init__(self, num_classes: int, cfg: LossConfig) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cfg = cfg
        self.matcher = HungarianMatcher(cfg.class_weight, cfg.mask_weight, cfg.dice_weight, cfg.num_points)
        weight = torch.ones(num_classes + 1)
        weight[-1] = cfg.no_object_weight
        self.empty_weight: Tensor
        self.register_buffer("empty_weight", weight)

    def weight_of(self, name: str) -> float:
        kind = name.split("_")[1]
        return {"ce": self.cfg.class_weight, "mask": self.cfg.mask_weight, "dice": self.cfg.dice_weight}[kind]

    def total(self, losses: dict[str, Tensor]) -> Tensor:
        return torch.stack([self.weight_of(k) * v for k, v in losses.items()]).sum()

    def forward(self, outputs: PEMOutput, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        device = outputs.class_logits.device
        num_masks_t = torch.tensor([float(sum(len(t["labels"]) for t in targets))], device=device)
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(num_masks_t)
            world = dist.get_world_size()
        num_masks = max(num_masks_t.item() / world, 1.0)

        losses = self._losses(outputs.class_logits, outputs.mask_logits, targets, num_masks)
        if self.cfg.deep_supervision:
            for i, aux in enumerate(outputs.aux):
                aux_losses = self._losses(aux.class_logits, aux.mask_logits, targets, num_masks)
                losses.update({f"{k}_{i}": v for k, v in aux_losses.items()})
        return losses

    def _losses(
        self, class_logits: Tensor, mask_logits: Tensor, targets: list[dict[str, Tensor]], num_masks: float
    ) -> dict[str, Tensor]:
        matches = self.matcher(class_logits, mask_logits, targets)
        return {
            "loss_ce": self._class_loss(class_logits, targets, matches),
            **self._mask_losses(mask_logits, targets, matches, num_masks),
        }

    def _class_loss(
        self, class_logits: Tensor, targets: list[dict[str, Tensor]], matches: list[Match]
    ) -> Tensor:
        logits = at_least_fp32(class_logits)
        target_classes = torch.full(
            logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device
        )
        for b, (src, tgt) in enumerate(matches):
            target_classes[b, src.to(logits.device)] = targets[b]["labels"][tgt].to(logits.device)
        return F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight.to(logits.dtype))

    def _mask_losses(
        self, mask_logits: Tensor, targets: list[dict[str, Tensor]], matches: list[Match], num_masks: float
    ) -> dict[str, Tensor]:
        batch_idx = torch.cat([torch.full_like(src, b) for b, (src, _) in enumerate(matches)])
        src_idx = torch.cat([src for src, _ in matches])
        if src_idx.numel() == 0:
            zero = mask_logits.sum() * 0.0
            return {"loss_mask": zero, "loss_dice": zero}
        src = mask_logits[batch_idx.to(mask_logits.device), src_idx.to(mask_logits.device)][:, None]
        tgt = torch.cat([t["masks"][j] for t, (_, j) in zip(targets, matches, strict=True)]).to(src)[:, None]
        with torch.no_grad():
            if self.cfg.num_points > 0:
                coords = uncertain_coords(
                    at_least_fp32(src),
                    self.cfg.num_points,
                    self.cfg.oversample_ratio,
                    self.cfg.importance_sample_ratio,
                )
            else:
                coords = grid_coords(
                    src.shape[-2], src.shape[-1], src.shape[0], src.device, at_least_fp32(src).dtype
                )
            tgt_points = point_sample(tgt.to(coords.dtype), coords)
        src_points = point_sample(at_least_fp32(src), coords)
        return {
            "loss_mask": sigmoid_ce_loss(src_points, tgt_points, num_masks),
            "loss_dice": dice_loss(src_points, tgt_points, num_masks),
        }
