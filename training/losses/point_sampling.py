"""Point sampling of masks (PointRend, as Mask2Former/PEM use it for losses on sampled points).

Coordinates are normalised to [0, 1] x [0, 1] as (x, y), so predictions at 1/4 resolution and targets
at full resolution are sampled at the same places without resizing either.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def at_least_fp32(x: Tensor) -> Tensor:
    """Losses run in fp32 under AMP (fp16/bf16 inputs are upcast); fp64 stays fp64."""
    return x if x.dtype == torch.float64 else x.float()


def point_sample(masks: Tensor, coords: Tensor) -> Tensor:
    """masks [N, 1, H, W], coords [N, P, 2] in [0, 1] -> values [N, P] (bilinear, align_corners=False)."""
    out = F.grid_sample(masks, 2.0 * coords.unsqueeze(2) - 1.0, mode="bilinear", align_corners=False)
    return out[:, 0, :, 0]


def grid_coords(h: int, w: int, n: int, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """Every pixel centre of an h x w mask as coords [n, h*w, 2]: the dense (sampling-free) mode."""
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=-1).expand(n, -1, -1)


def uncertain_coords(
    logits: Tensor, num_points: int, oversample_ratio: float, importance_sample_ratio: float
) -> Tensor:
    """Importance sampling: draw ``num_points * oversample_ratio`` random points, keep the
    ``importance_sample_ratio`` share whose logits are closest to 0 (most uncertain), fill the rest with
    fresh random points. logits [N, 1, H, W] -> coords [N, num_points, 2]."""
    n = logits.shape[0]
    num_sampled = int(num_points * oversample_ratio)
    coords = torch.rand(n, num_sampled, 2, device=logits.device).to(logits.dtype)
    uncertainty = -point_sample(logits, coords).abs()
    num_uncertain = int(importance_sample_ratio * num_points)
    idx = uncertainty.topk(num_uncertain, dim=1).indices
    picked = torch.gather(coords, 1, idx.unsqueeze(-1).expand(-1, -1, 2))
    num_random = num_points - num_uncertain
    if num_random > 0:
        fresh = torch.rand(n, num_random, 2, device=logits.device).to(logits.dtype)
        picked = torch.cat([picked, fresh], dim=1)
    return picked
