"""Small building blocks shared by the PEM components."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> ReLU, Kaiming-initialised like the reference code."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
        nn.init.kaiming_normal_(conv.weight, a=1)
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)


class MLP(nn.Module):
    """Linear layers with ReLU between them (the mask-embedding head)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def sine_position_embedding(
    batch: int, height: int, width: int, dim: int, device: torch.device, temperature: float = 10000.0
) -> Tensor:
    """Normalised 2-D sine/cosine position embedding, [batch, dim, height, width] (DETR/Mask2Former).

    The first dim/2 channels encode y, the rest x; positions are scaled to (0, 2*pi].
    """
    feats = dim // 2
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    y = y / (height + eps) * scale
    x = x / (width + eps) * scale
    dim_t = torch.arange(feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / feats)
    pos_y = y[:, None] / dim_t  # [H, F]
    pos_x = x[:, None] / dim_t  # [W, F]
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat(
        (pos_y[:, None, :].expand(height, width, feats), pos_x[None, :, :].expand(height, width, feats)),
        dim=2,
    )
    return pos.permute(2, 0, 1).unsqueeze(0).expand(batch, -1, -1, -1)


def bilinear_upsample_kernel(channels: int, kernel: int) -> Tensor:
    """ConvTranspose2d weight [channels, channels, k, k] that performs bilinear up-sampling per channel."""
    f = math.ceil(kernel / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    taps = torch.tensor([1 - abs(i / f - c) for i in range(kernel)])
    kernel2d = taps[:, None] * taps[None, :]
    weight = torch.zeros(channels, channels, kernel, kernel)
    idx = torch.arange(channels)
    weight[idx, idx] = kernel2d
    return weight
