"""Backbones returning the four feature maps res2..res5 (strides 4, 8, 16, 32).

- ResNet-50: torchvision's layout (stride in the 3x3 conv, i.e. detectron2's STRIDE_IN_1X1=False),
  BatchNorm everywhere, nothing frozen; torchvision ImageNet weights load as they are.
- STDC1 / STDC2 ("Rethinking BiSeNet", STDC-Seg): CatBottleneck stages with depths [2,2,2] / [4,5,3];
  module names follow the STDC-Seg ``features.N`` layout so official weights map one to one.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

from training.model.config import BackboneConfig

FEATURE_NAMES = ("res2", "res3", "res4", "res5")


class ResNet50(nn.Module):
    """ResNet-50 trunk without the classifier."""

    def __init__(self) -> None:
        super().__init__()
        net = torchvision.models.resnet50(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = (256, 512, 1024, 2048)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


class ConvX(nn.Sequential):
    """Conv (no bias) -> BN -> ReLU, the STDC unit."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)


class CatBottleneck(nn.Module):
    """STDC module: a chain of convs with halving widths whose outputs are concatenated.

    With stride 2 the first output is down-sampled by a depthwise conv before the chain and by
    3x3 average pooling before the concatenation (as STDC-Seg does).
    """

    def __init__(self, in_ch: int, out_ch: int, block_num: int = 4, stride: int = 1) -> None:
        super().__init__()
        if block_num < 3:
            raise ValueError("CatBottleneck needs block_num >= 3")
        self.stride = stride
        if stride == 2:
            half = out_ch // 2
            self.avd_layer = nn.Sequential(
                nn.Conv2d(half, half, 3, 2, padding=1, groups=half, bias=False), nn.BatchNorm2d(half)
            )
            self.skip = nn.AvgPool2d(3, 2, padding=1)
        widths = [out_ch // 2] + [out_ch // 2 ** (i + 1) for i in range(1, block_num - 1)]
        widths.append(widths[-1])  # the last conv keeps the width of the one before
        convs = [ConvX(in_ch, widths[0], kernel=1)]
        convs += [ConvX(widths[i - 1], widths[i]) for i in range(1, block_num)]
        self.conv_list = nn.ModuleList(convs)

    def forward(self, x: Tensor) -> Tensor:
        out1 = self.conv_list[0](x)
        out = self.avd_layer(out1) if self.stride == 2 else out1
        outs = []
        for conv in self.conv_list[1:]:
            out = conv(out)
            outs.append(out)
        if self.stride == 2:
            out1 = self.skip(out1)
        return torch.cat([out1, *outs], dim=1)


class STDCNet(nn.Module):
    """STDC1 (depths [2,2,2]) or STDC2 ([4,5,3]); res2..res5 have base, 4, 8, 16 x base channels."""

    def __init__(self, depths: tuple[int, int, int], base: int = 64, block_num: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvX(3, base // 2, 3, 2), ConvX(base // 2, base, 3, 2)]
        for stage, depth in enumerate(depths):
            out_ch = base * 2 ** (stage + 2)
            for j in range(depth):
                in_ch = (base if stage == 0 else out_ch // 2) if j == 0 else out_ch
                layers.append(CatBottleneck(in_ch, out_ch, block_num, stride=2 if j == 0 else 1))
        self.features = nn.Sequential(*layers)
        ends = [2, 2 + depths[0], 2 + depths[0] + depths[1], 2 + sum(depths)]
        self.stage_ends = tuple(ends)  # res2 is the output of features[1]
        self.channels = (base, base * 4, base * 8, base * 16)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        start = 0
        for end in self.stage_ends:
            for i in range(start, end):
                x = self.features[i](x)
            outs.append(x)
            start = end
        return outs


def build_backbone(cfg: BackboneConfig) -> ResNet50 | STDCNet:
    if cfg.name == "resnet50":
        return ResNet50()
    if cfg.name == "stdc1":
        return STDCNet((2, 2, 2), base=cfg.stdc_base)
    if cfg.name == "stdc2":
        return STDCNet((4, 5, 3), base=cfg.stdc_base)
    raise ValueError(f"unknown backbone {cfg.name}")
