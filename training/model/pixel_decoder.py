"""PEM's efficient pixel decoder: in-projections, global context, context self-modulation (CSM) and
three modulated-deformable-conv (DCNv2) up-sampling stages, top-down from stride 32 to stride 4.

Matches the reference code, quirks included: CSM applies the sigmoid twice; the stride-32 level gets
``ConvBNReLU(GAP(res5))`` added; the 27-channel offset conv output is split in three, offsets are
``cat(c0, c1)`` read as interleaved (dy, dx) pairs per tap and the modulation is ``sigmoid(c2)``; the levels
handed to the transformer decoder are taken after each DCN block, before its transposed-conv up-sampling.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

from training.model.config import PixelDecoderConfig
from training.model.layers import ConvBNReLU, bilinear_upsample_kernel


class CSM(nn.Module):
    """Context self-modulation: ``x + x * sigmoid(sigmoid(MLP(GAP(x))))``."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        w = torch.sigmoid(torch.sigmoid(self.mlp(x.mean(dim=(2, 3), keepdim=True))))
        return x + x * w


class ModulatedDeformConv(nn.Module):
    """3x3 DCNv2 without bias (torchvision's deform_conv2d); exports as ONNX DeformConv."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3) -> None:
        super().__init__()
        self.padding = kernel // 2
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel, kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")  # c2_msra_fill

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        return deform_conv2d(x, offset, self.weight, None, padding=(self.padding, self.padding), mask=mask)


class DeformUpBlock(nn.Module):
    """DCNv2 3x3 -> BN -> ReLU (the level's output), then ConvTranspose 4x4/2 -> BN -> ReLU (up-sampled)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = 9
        self.offset = nn.Conv2d(channels, 3 * taps, 3, padding=1)  # zero-initialised: starts as a plain conv
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)  # type: ignore[arg-type]
        self.dcn = ModulatedDeformConv(channels, channels)
        self.dcn_bn = nn.BatchNorm2d(channels)
        self.up = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False)
        with torch.no_grad():
            self.up.weight.copy_(bilinear_upsample_kernel(channels, 4))
        self.up_bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        c0, c1, c2 = torch.chunk(self.offset(x), 3, dim=1)
        offset = torch.cat((c0, c1), dim=1)
        y = torch.relu(self.dcn_bn(self.dcn(x, offset, torch.sigmoid(c2))))
        return y, torch.relu(self.up_bn(self.up(y)))


class PixelDecoder(nn.Module):
    """Returns ``(mask_features at stride 4, [level at stride 32, 16, 8])``."""

    def __init__(self, in_channels: tuple[int, int, int, int], cfg: PixelDecoderConfig) -> None:
        super().__init__()
        dim = cfg.conv_dim
        self.in_projections = nn.ModuleList(ConvBNReLU(c, dim, 1) for c in in_channels)
        self.conv_avg = ConvBNReLU(in_channels[-1], dim, 1)
        self.csm = nn.ModuleList(
            CSM(dim, cfg.csm_reduction) if cfg.use_csm else nn.Identity() for _ in range(4)
        )
        self.dcn = nn.ModuleList(DeformUpBlock(dim) for _ in range(3))
        self.out = ConvBNReLU(dim, cfg.mask_dim, 1)

    def forward(self, features: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        proj = [p(f) for p, f in zip(self.in_projections, features, strict=True)]
        context = self.conv_avg(features[3].mean(dim=(2, 3), keepdim=True))
        x = self.csm[0](proj[3]) + context
        levels = []
        for i, block in enumerate(self.dcn):
            level, up = block(x)
            levels.append(level)
            x = self.csm[i + 1](proj[2 - i]) + up
        return self.out(x), levels


def deform_conv_macs(channels_in: int, channels_out: int, height: int, width: int, kernel: int = 3) -> int:
    """Multiply-adds of one stride-1 DCN (what FLOP counters that skip deform conv leave out)."""
    return channels_in * channels_out * kernel * kernel * height * width
