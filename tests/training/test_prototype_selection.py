"""The prototype-selection reference against an explicit loop, the empty-mask rule, ties, streaming."""

from __future__ import annotations

import pytest
import torch

from training.model.prototype_selection import (
    masked_tokens,
    prototype_indices,
    prototype_indices_streaming,
    prototype_selection,
)


def loop_prototype_selection(features, queries, mask_logits, heads):
    """Literal per (batch, head, query) implementation of the reference semantics."""
    b, n, c = features.shape
    q = queries.shape[1]
    d = c // heads
    out = torch.empty(b, q, c)
    for bi in range(b):
        every_query_empty = bool((mask_logits[bi] < 0).all()) if mask_logits is not None else False
        for h in range(heads):
            sl = slice(h * d, (h + 1) * d)
            for qi in range(q):
                best, best_i = None, 0
                for t in range(n):
                    score = float(features[bi, t, sl] @ queries[bi, qi, sl])
                    if mask_logits is not None and not every_query_empty and mask_logits[bi, qi, t] < 0:
                        score = float("-inf")
                    if best is None or score > best:
                        best, best_i = score, t
                out[bi, qi, sl] = features[bi, best_i, sl]
    return out


@pytest.mark.parametrize("heads", [1, 4])
@pytest.mark.parametrize("with_mask", [False, True])
def test_reference_equals_loop(heads: int, with_mask: bool) -> None:
    f = torch.randn(2, 23, 16)
    q = torch.randn(2, 5, 16)
    m = torch.randn(2, 5, 23) if with_mask else None
    torch.testing.assert_close(prototype_selection(f, q, m, heads), loop_prototype_selection(f, q, m, heads))


def test_selected_tokens_are_unmasked_and_best() -> None:
    f = torch.randn(1, 50, 8)
    q = torch.randn(1, 3, 8)
    m = torch.randn(1, 3, 50)
    idx = prototype_indices(f, q, m, heads=2)  # [1, 2, 3]
    for h in range(2):
        for qi in range(3):
            t = int(idx[0, h, qi])
            assert m[0, qi, t] >= 0
            sl = slice(4 * h, 4 * h + 4)
            scores = f[0, :, sl] @ q[0, qi, sl]
            scores[m[0, qi] < 0] = float("-inf")
            assert scores[t] == scores.max()


def test_single_empty_query_selects_token_zero() -> None:
    """One fully masked query keeps an all -inf row (argmax -> token 0); the others are unaffected."""
    f = torch.randn(1, 10, 4)
    q = torch.randn(1, 2, 4)
    m = torch.ones(1, 2, 10)
    m[0, 0] = -1.0  # query 0: every token masked
    m[0, 1, :5] = -1.0  # query 1: first half masked
    idx = prototype_indices(f, q, m, heads=1)
    assert int(idx[0, 0, 0]) == 0
    assert int(idx[0, 0, 1]) >= 5


def test_all_queries_empty_clears_the_mask() -> None:
    """When every query of an image is fully masked the whole mask is dropped, per image."""
    f = torch.randn(2, 10, 4)
    q = torch.randn(2, 3, 4)
    m = torch.ones(2, 3, 10)
    m[0] = -1.0  # image 0: everything masked -> unmasked selection
    m[1, :, 3:] = -1.0  # image 1: only tokens 0..2 allowed
    assert not masked_tokens(m)[0].any()
    idx = prototype_indices(f, q, m, heads=1)
    torch.testing.assert_close(idx[0], prototype_indices(f[:1], q[:1], None, heads=1)[0])
    assert int(idx[1].max()) <= 2


def test_ties_pick_first_index() -> None:
    f = torch.zeros(1, 6, 2)
    f[0, 2] = f[0, 4] = torch.tensor([1.0, 1.0])
    q = torch.ones(1, 1, 2)
    assert int(prototype_indices(f, q, None, heads=1)[0, 0, 0]) == 2
    assert int(prototype_indices_streaming(f, q, None, heads=1, chunk=3)[0, 0, 0]) == 2


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_streaming_equals_reference(chunk: int) -> None:
    f = torch.randn(2, 300, 32)
    q = torch.randn(2, 10, 32)
    m = torch.randn(2, 10, 300)
    m[1, 4] = -1.0
    expected = prototype_indices(f, q, m, heads=4)
    torch.testing.assert_close(prototype_indices_streaming(f, q, m, heads=4, chunk=chunk), expected)
    m[0] = -1.0  # image 0 fully masked: the empty-mask rule clears its mask
    expected = prototype_indices(f, q, m, heads=4)
    torch.testing.assert_close(prototype_indices_streaming(f, q, m, heads=4, chunk=chunk), expected)
