"""PEM: backbone -> efficient pixel decoder -> transformer decoder with PEM-CA -> class and mask logits."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from pem_rt.errors import PemError
from training.model.backbone import build_backbone
from training.model.config import ModelConfig
from training.model.pixel_decoder import PixelDecoder
from training.model.transformer_decoder import Prediction, TransformerDecoder


@dataclass
class PEMOutput:
    """Final class logits [B, Q, K+1] and mask logits [B, Q, H/4, W/4]; ``aux`` holds the earlier
    predictions (learned queries first) when all predictions were requested, for deep supervision."""

    class_logits: Tensor
    mask_logits: Tensor
    aux: list[Prediction] = field(default_factory=list)


class PEM(nn.Module):
    """The PEM segmentation model.

    Args:
        cfg: the model configuration (see :mod:`training.model.config`).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone)
        self.pixel_decoder = PixelDecoder(self.backbone.channels, cfg.pixel_decoder)
        self.predictor = TransformerDecoder(
            cfg.pixel_decoder.conv_dim, cfg.pixel_decoder.mask_dim, cfg.num_classes, cfg.decoder
        )
        self.pixel_mean: Tensor
        self.pixel_std: Tensor
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, 3, 1, 1), persistent=False)

    def normalize(self, images: Tensor) -> Tensor:
        """RGB images [B, 3, H, W] in 0..255 (any dtype) -> normalised float input."""
        return (images.float() - self.pixel_mean) / self.pixel_std

    def forward(self, images: Tensor, all_predictions: bool | None = None) -> PEMOutput:
        """images: normalised RGB [B, 3, H, W], H and W divisible by ``cfg.size_divisibility``.

        ``all_predictions`` (default: ``self.training``) returns every decoder prediction in ``aux``.
        """
        h, w = images.shape[-2:]
        div = self.cfg.size_divisibility
        if h % div or w % div:
            raise PemError(f"input size {h}x{w} is not a multiple of {div}; resize or pad the image")
        if all_predictions is None:
            all_predictions = self.training
        features = self.backbone(images)
        mask_features, levels = self.pixel_decoder(features)
        preds = self.predictor(levels, mask_features, all_predictions)
        return PEMOutput(preds[-1].class_logits, preds[-1].mask_logits, preds[:-1])


def build_model(cfg: ModelConfig) -> PEM:
    return PEM(cfg)
