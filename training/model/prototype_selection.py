"""Prototype selection, the heart of PEM-CA: the reference that every kernel and graph must equal.

Per batch element, head and query: among the unmasked pixel tokens, pick the one whose head slice has
the largest dot product with the query's head slice (first index on ties, like ``torch.argmax``) and
return it. Contract (shared/DESIGN.md, plugin op ``PrototypeSelection``):

    features [B, N, C], queries [B, Q, C], mask_logits [B, Q, N] -> prototypes [B, Q, C]

Masking follows the PEM reference code exactly: a token is masked for a query where its mask logit is
< 0; only when *every* query of an image is fully masked is that image's mask cleared; a single fully
masked query keeps an all -inf row, so its argmax is token 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_tokens(mask_logits: Tensor) -> Tensor:
    """Boolean [B, Q, N], True where the token is masked out, with the reference's empty-mask rule."""
    masked = mask_logits < 0
    every_query_empty = masked.all(dim=2).all(dim=1)  # [B]
    return masked & ~every_query_empty[:, None, None]


def _split_heads(x: Tensor, heads: int) -> Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)  # [B, h, n, D]


def prototype_indices(features: Tensor, queries: Tensor, mask_logits: Tensor | None, heads: int) -> Tensor:
    """Index of the selected token per (batch, head, query): int64 [B, heads, Q]."""
    f = _split_heads(features, heads)
    q = _split_heads(queries, heads)
    sim = q @ f.transpose(-1, -2)  # [B, h, Q, N]
    if mask_logits is not None:
        sim = sim.masked_fill(masked_tokens(mask_logits).unsqueeze(1), float("-inf"))
    return sim.argmax(dim=-1)


def gather_prototypes(features: Tensor, indices: Tensor) -> Tensor:
    """Gather the head slices ``indices`` [B, h, Q] from ``features`` [B, N, C] -> [B, Q, C]."""
    b, _, c = features.shape
    heads, q = indices.shape[1], indices.shape[2]
    f = _split_heads(features, heads)
    picked = torch.gather(f, 2, indices.unsqueeze(-1).expand(-1, -1, -1, c // heads))  # [B, h, Q, D]
    return picked.transpose(1, 2).reshape(b, q, c)


def prototype_selection(features: Tensor, queries: Tensor, mask_logits: Tensor | None, heads: int) -> Tensor:
    """The PyTorch reference of the ``PrototypeSelection`` op (materialises B x heads x Q x N scores)."""
    return gather_prototypes(features, prototype_indices(features, queries, mask_logits, heads))


def prototype_indices_streaming(
    features: Tensor, queries: Tensor, mask_logits: Tensor | None, heads: int, chunk: int = 512
) -> Tensor:
    """Same indices as :func:`prototype_indices`, streaming over tokens in chunks.

    Keeps only a running max and argmax per (batch, head, query): peak extra memory is
    O(B * heads * Q * chunk) instead of O(B * heads * Q * N). The mask enters each chunk's GEMM as an
    additive 0 / -inf bias (``baddbmm``), so no pass over the scores is spent on masking. Ties keep the
    earlier token because a later chunk replaces the running best only when strictly greater.
    """
    b, n, c = features.shape
    d = c // heads
    q = _split_heads(queries, heads).reshape(b * heads, -1, d)  # [B*h, Q, D]
    nq = q.shape[1]
    tokens = features.reshape(b, n, heads, d)
    nothing_masked = mask_logits.amax(dim=(1, 2)) < 0 if mask_logits is not None else None  # empty rule
    no_bias = torch.zeros((), dtype=q.dtype, device=q.device)
    minus_inf = torch.full((), float("-inf"), dtype=q.dtype, device=q.device)
    best = torch.full((b * heads, nq), float("-inf"), dtype=q.dtype, device=q.device)
    best_idx = torch.zeros((b * heads, nq), dtype=torch.long, device=q.device)
    for start in range(0, n, chunk):
        f = tokens[:, start : start + chunk].permute(0, 2, 3, 1).reshape(b * heads, d, -1)  # [B*h, D, chunk]
        if mask_logits is None or nothing_masked is None:
            sim = torch.bmm(q, f)
        else:
            masked = (mask_logits[:, :, start : start + chunk] < 0) & ~nothing_masked[:, None, None]
            bias = torch.where(masked, minus_inf, no_bias)  # [B, Q, chunk], the same for every head
            bias = bias.repeat_interleave(heads, dim=0) if b > 1 else bias
            sim = torch.baddbmm(bias, q, f)  # [B*h, Q, chunk]
        value, idx = sim.max(dim=-1)
        better = value > best
        best = torch.where(better, value, best)
        best_idx = torch.where(better, idx + start, best_idx)
    return best_idx.reshape(b, heads, nq)
