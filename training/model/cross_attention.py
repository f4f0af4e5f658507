"""The two cross-attention layers the paper compares: PEM-CA (prototype-based) and Mask2Former's
standard masked cross-attention (the ablation baseline). Both take and return queries [B, Q, C]."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from training.model.prototype_selection import (
    gather_prototypes,
    prototype_indices_streaming,
    prototype_selection,
)


def _normalize_(x: Tensor) -> Tensor:
    """``F.normalize(x, dim=-1)`` in place (the same division, no temporaries): inference only."""
    return x.div_(torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min_(1e-12))


class LocalRepresentation(nn.Module):
    """Pixel tokens for PEM-CA: BN -> depthwise 3x3 conv (with bias) -> Linear, [B,C,H,W] -> [B,HW,C]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(dim)
        self.to_query_3x3 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.to_query_3x3(self.bn(x)).flatten(2).transpose(1, 2))


class PrototypeCrossAttention(nn.Module):
    """PEM-CA: each query takes, per head, its single most similar unmasked pixel token (prototype),
    then interacts with it element-wise: ``out = final(normalize(proj(P * q), dim=1) * alpha + P) + tgt``.

    The normalisation of ``proj(P * q)`` runs over dim 1 of [B, Q, C], i.e. over queries: a quirk of the
    reference implementation that official weights depend on, kept on purpose.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.feature_proj = LocalRepresentation(dim)
        self.query_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.proj = nn.Linear(dim, dim)
        self.final = nn.Linear(dim, dim)
        self.alpha = nn.Parameter(torch.ones(1, 1, dim))

    def forward(
        self, tgt: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor, mask_logits: Tensor | None
    ) -> Tensor:
        """tgt, query_pos [B,Q,C]; memory, pos [B,C,H,W]; mask_logits [B,Q,H*W] or None."""
        mask = None if mask_logits is None else mask_logits.detach()
        exporting = torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()
        if torch.is_grad_enabled() or exporting or memory.device.type != "cpu":
            # training, export (graph surgery matches the reference ops' pattern in the ONNX; the traced
            # TorchScript export of a fake-quantised model too) and GPUs, where
            # the B x heads x Q x N scores are cheap and the streaming loop would be launch-bound
            tokens = F.normalize(self.feature_proj(memory + pos), dim=-1)
            queries = F.normalize(self.query_proj(tgt + query_pos), dim=-1)
            protos = prototype_selection(tokens, queries, mask, self.heads)
        else:  # CPU inference: the same values without the B x heads x Q x N scores or extra copies
            tokens = _normalize_(self.feature_proj(memory + pos))
            queries = _normalize_(self.query_proj(tgt + query_pos))
            protos = gather_prototypes(tokens, prototype_indices_streaming(tokens, queries, mask, self.heads))
        out = F.normalize(self.proj(protos * queries), dim=1) * self.alpha + protos
        return self.final(out) + tgt


class MaskedCrossAttention(nn.Module):
    """Mask2Former's masked cross-attention (pre-norm), the baseline PEM-CA is compared with.

    Mask2Former's per-query rule: a query whose mask hides every token attends to all tokens.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self, tgt: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor, mask_logits: Tensor | None
    ) -> Tensor:
        tokens = memory.flatten(2).transpose(1, 2)
        key = tokens + pos.flatten(2).transpose(1, 2)
        attn_mask = None
        if mask_logits is not None:
            blocked = mask_logits.detach() < 0  # [B, Q, N]
            blocked = blocked & ~blocked.all(dim=-1, keepdim=True)
            attn_mask = blocked.repeat_interleave(self.heads, dim=0)  # [B*heads, Q, N]
        q = self.norm(tgt)
        out = self.attn(q + query_pos, key, tokens, attn_mask=attn_mask, need_weights=False)[0]
        return tgt + out
