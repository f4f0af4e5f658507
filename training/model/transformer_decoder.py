"""PEM's transformer decoder: learned queries refined by ``num_layers`` layers of
cross-attention (PEM-CA or masked) -> self-attention -> FFN, all pre-norm, with a prediction
(class logits, mask logits) from the learned queries and after every layer (deep supervision).

Layer i attends to feature level i % 3 (strides 32, 16, 8); its attention mask is the previous
prediction's mask logits resized (bilinear, align_corners=False) to that level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from training.model.config import DecoderConfig
from training.model.cross_attention import MaskedCrossAttention, PrototypeCrossAttention
from training.model.layers import MLP, sine_position_embedding


class SelfAttention(nn.Module):
    """Pre-norm self-attention over queries: ``x + MHA(q = k = LN(x) + pos, v = LN(x))``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, x: Tensor, query_pos: Tensor) -> Tensor:
        y = self.norm(x)
        qk = y + query_pos
        return x + self.self_attn(qk, qk, y, need_weights=False)[0]


class FFN(nn.Module):
    """Pre-norm feed-forward: ``x + W2 relu(W1 LN(x))``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.linear2(F.relu(self.linear1(self.norm(x))))


def _xavier_conv1x1(in_ch: int, out_ch: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, 1)
    nn.init.kaiming_uniform_(conv.weight, a=1)  # detectron2's c2_xavier_fill
    nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
    return conv


@dataclass
class Prediction:
    """One decoder prediction: class logits [B, Q, K+1] and mask logits [B, Q, H/4, W/4]."""

    class_logits: Tensor
    mask_logits: Tensor


class TransformerDecoder(nn.Module):
    """Queries -> per-query class logits and mask logits."""

    num_levels = 3

    def __init__(self, in_channels: int, mask_dim: int, num_classes: int, cfg: DecoderConfig) -> None:
        super().__init__()
        dim = cfg.hidden_dim
        cross = PrototypeCrossAttention if cfg.cross_attention == "pem" else MaskedCrossAttention
        self.cross_attention = nn.ModuleList(cross(dim, cfg.num_heads) for _ in range(cfg.num_layers))
        self.self_attention = nn.ModuleList(SelfAttention(dim, cfg.num_heads) for _ in range(cfg.num_layers))
        self.ffn = nn.ModuleList(FFN(dim, cfg.ffn_dim) for _ in range(cfg.num_layers))
        self.decoder_norm = nn.LayerNorm(dim)
        self.query_feat = nn.Embedding(cfg.num_queries, dim)
        self.query_embed = nn.Embedding(cfg.num_queries, dim)
        self.level_embed = nn.Embedding(self.num_levels, dim)
        self.input_proj = nn.ModuleList(_xavier_conv1x1(in_channels, dim) for _ in range(self.num_levels))
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.mask_embed = MLP(dim, dim, mask_dim, 3)

    def forward(self, levels: list[Tensor], mask_features: Tensor, all_predictions: bool) -> list[Prediction]:
        """levels: [stride 32, 16, 8] pixel-decoder outputs; mask_features [B, mask_dim, H/4, W/4].

        Returns every prediction (num_layers + 1, for deep supervision) when ``all_predictions``, else
        only the final one. In the latter case the intermediate attention masks are computed directly at
        each level's resolution from mask features resized once per level: bilinear resizing is linear,
        so ``resize(einsum(e, F)) == einsum(e, resize(F))`` and the result is the same computation as
        the reference's, without the full-resolution mask einsums it throws away (about 20 GFLOPs of
        34 in the R50 decoder at 1024x2048).
        """
        b = mask_features.shape[0]
        sizes = [(int(x.shape[-2]), int(x.shape[-1])) for x in levels]
        src, pos = [], []
        for i, x in enumerate(levels):
            src.append(self.input_proj[i](x) + self.level_embed.weight[i][None, :, None, None])
            pos.append(sine_position_embedding(b, *sizes[i], src[i].shape[1], x.device).to(src[i].dtype))
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        output = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)

        small_features = (
            None
            if all_predictions
            else [F.interpolate(mask_features, size=s, mode="bilinear", align_corners=False) for s in sizes]
        )
        predictions: list[Prediction] = []
        small = None if small_features is None else small_features[0]
        attn = self._attention_mask(output, mask_features, small, sizes[0], predictions)
        num_layers = len(self.cross_attention)
        for i in range(num_layers):
            level = i % self.num_levels
            output = self.cross_attention[i](output, src[level], pos[level], query_pos, attn)
            output = self.self_attention[i](output, query_pos)
            output = self.ffn[i](output)
            if i < num_layers - 1:
                next_level = (i + 1) % self.num_levels
                small = None if small_features is None else small_features[next_level]
                attn = self._attention_mask(output, mask_features, small, sizes[next_level], predictions)
        predictions.append(self.predict(output, mask_features))
        return predictions

    def predict(self, output: Tensor, mask_features: Tensor) -> Prediction:
        """Class logits and mask logits from queries [B, Q, C] (shared decoder_norm before both heads)."""
        x = self.decoder_norm(output)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(x), mask_features)
        return Prediction(self.class_embed(x), masks)

    def _attention_mask(
        self,
        output: Tensor,
        mask_features: Tensor,
        small_features: Tensor | None,
        size: tuple[int, int],
        predictions: list[Prediction],
    ) -> Tensor:
        """Mask logits [B, Q, h*w] at ``size``; records the full prediction when there are no
        pre-resized ``small_features`` (the supervised path)."""
        if small_features is None:
            pred = self.predict(output, mask_features)
            predictions.append(pred)
            return F.interpolate(pred.mask_logits, size=size, mode="bilinear", align_corners=False).flatten(2)
        embed = self.mask_embed(self.decoder_norm(output))
        return torch.einsum("bqc,bchw->bqhw", embed, small_features).flatten(2)
