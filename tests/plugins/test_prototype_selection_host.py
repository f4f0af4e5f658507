"""PrototypeSelection: the kernels' element math and split structure (compiled for the host) against the
PyTorch reference of training/model/prototype_selection.py, index for index."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

from plugins import hostref
from training.model.prototype_selection import prototype_indices, prototype_selection

# GPUs the launcher might meet: the split structure (and so the combine rule) depends on the SM count.
SM_COUNTS = [1, 28, 132]


def exact_inputs(b: int, n: int, q: int, c: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Small integers: every dot product is exact in fp32 and fp16, so scores tie often and ties are real."""
    features = torch.randint(-3, 4, (b, n, c)).float()
    queries = torch.randint(-3, 4, (b, q, c)).float()
    logits = torch.randn(b, q, n)
    return features, queries, logits


def check_indices(
    hostlib: ctypes.CDLL,
    features: torch.Tensor,
    queries: torch.Tensor,
    logits: torch.Tensor,
    heads: int,
    sm_count: int,
    dtype: type = np.float32,
    mask_dtype: type = np.float32,
) -> np.ndarray:
    prototypes, indices = hostref.prototype_selection(
        features.numpy().astype(dtype),
        queries.numpy().astype(dtype),
        logits.numpy().astype(mask_dtype),
        heads,
        sm_count=sm_count,
        lib=hostlib,
    )
    expected = prototype_indices(features, queries, logits, heads).numpy()
    np.testing.assert_array_equal(indices, expected)
    reference = prototype_selection(features, queries, logits, heads).numpy().astype(dtype)
    np.testing.assert_array_equal(prototypes, reference)  # a gather: bit-exact
    return indices


@pytest.mark.parametrize("sm_count", SM_COUNTS)
@pytest.mark.parametrize(
    ("b", "n", "q", "c", "heads"), [(2, 300, 20, 32, 4), (3, 97, 7, 24, 1), (1, 1000, 100, 64, 8)]
)
def test_indices_equal_reference(
    hostlib: ctypes.CDLL, sm_count: int, b: int, n: int, q: int, c: int, heads: int
) -> None:
    features, queries, logits = exact_inputs(b, n, q, c)
    check_indices(hostlib, features, queries, logits, heads, sm_count)


@pytest.mark.parametrize("sm_count", SM_COUNTS)
def test_ties_take_the_first_token(hostlib: ctypes.CDLL, sm_count: int) -> None:
    """Duplicated tokens score identically; the first copy must win, also across token ranges (splits)."""
    features, queries, logits = exact_inputs(2, 256, 12, 32)
    features[:, 40:50] = features[:, 30:40]
    features[:, 200:] = features[:, 10:66]  # copies far apart: in another split on the big GPUs
    logits = logits.abs()  # nothing masked: copies compete
    indices = check_indices(hostlib, features, queries, logits, 4, sm_count)
    assert (indices < 200).all()  # never a later copy


def test_ties_among_masked_and_unmasked(hostlib: ctypes.CDLL) -> None:
    """A masked earlier copy must not win a tie against its unmasked later copy."""
    features, queries, logits = exact_inputs(1, 64, 4, 16)
    features[:, 5] = 4.0  # the best token of every query and head (other entries are in [-3, 3])
    features[:, 50] = 4.0  # and its later copy
    queries[:] = 1.0
    logits[:] = 1.0
    logits[0, :, 5] = -1.0  # token 5 masked for every query, its copy 50 is not
    indices = check_indices(hostlib, features, queries, logits, 2, 132)
    assert (indices == 50).all()


@pytest.mark.parametrize("sm_count", SM_COUNTS)
def test_single_fully_masked_query_selects_token_zero(hostlib: ctypes.CDLL, sm_count: int) -> None:
    features, queries, logits = exact_inputs(2, 300, 10, 32)
    logits[0, 3] = -1.0  # query 3 of image 0: all -inf row in the reference
    logits[1, 7] = -0.5
    indices = check_indices(hostlib, features, queries, logits, 4, sm_count)
    assert (indices[0, :, 3] == 0).all() and (indices[1, :, 7] == 0).all()


@pytest.mark.parametrize("sm_count", SM_COUNTS)
def test_all_masked_image_is_cleared(hostlib: ctypes.CDLL, sm_count: int) -> None:
    """Every query of image 1 fully masked: the reference clears that image's mask (plain argmax)."""
    features, queries, logits = exact_inputs(3, 200, 6, 16)
    logits[1] = -2.0
    indices = check_indices(hostlib, features, queries, logits, 2, sm_count)
    unmasked = prototype_indices(features[1:2], queries[1:2], None, 2).numpy()
    np.testing.assert_array_equal(indices[1:2], unmasked)
    assert (indices[1] != 0).any()


def test_zero_logit_is_not_masked_and_nan_is_kept(hostlib: ctypes.CDLL) -> None:
    """The rule is `logit < 0`: 0.0 and -0.0 keep the token, and so does NaN (like the reference)."""
    features, queries, logits = exact_inputs(1, 50, 5, 8)
    logits[:] = -1.0
    logits[0, 0, 7] = 0.0
    logits[0, 1, 9] = -0.0
    logits[0, 2, 11] = float("nan")
    indices = check_indices(hostlib, features, queries, logits, 1, 132)
    assert indices[0, 0, 0] == 7 and indices[0, 0, 1] == 9 and indices[0, 0, 2] == 11


@pytest.mark.parametrize(
    ("dtype", "mask_dtype"), [(np.float16, np.float16), (np.float16, np.float32), (np.float32, np.float16)]
)
def test_fp16_inputs(hostlib: ctypes.CDLL, dtype: type, mask_dtype: type) -> None:
    """Exact small-integer inputs are exact in fp16 too, so the indices still equal the reference's."""
    features, queries, logits = exact_inputs(2, 400, 16, 32)
    logits[0, 2] = -1.0
    logits = logits.half().float()  # the fp32 reference sees the same mask as the fp16 path
    check_indices(hostlib, features, queries, logits, 4, 132, dtype, mask_dtype)


def test_random_normalised_features(hostlib: ctypes.CDLL) -> None:
    """Real-valued, L2-normalised inputs as in PEM-CA: the selected score is the reference maximum (a
    different fp32 summation order may only swap near-ties, which this data does not have)."""
    torch.manual_seed(3)
    f = torch.nn.functional.normalize(torch.randn(2, 512, 64), dim=-1)
    q = torch.nn.functional.normalize(torch.randn(2, 25, 64), dim=-1)
    logits = torch.randn(2, 25, 512)
    _, indices = hostref.prototype_selection(f.numpy(), q.numpy(), logits.numpy(), 8, lib=hostlib)
    expected = prototype_indices(f.double(), q.double(), logits, 8).numpy()
    np.testing.assert_array_equal(indices, expected)


def test_plan_splits_tokens_and_bounds_workspace(hostlib: ctypes.CDLL) -> None:
    plan = hostref.prototype_plan(1, 128 * 256, 100, 256, 8, sm_count=132, lib=hostlib)
    assert plan.query_tile * 8 <= 128 and plan.splits > 1
    assert plan.splits * plan.tokens_per_split >= 128 * 256 > (plan.splits - 1) * plan.tokens_per_split
    assert plan.shared_bytes <= 48 * 1024
    sizes = {
        hostref.prototype_workspace_bytes(2, 100, 256, 8, tokens=n, lib=hostlib)
        for n in (1, 2048, 32768, 10**6)
    }
    assert len(sizes) == 1  # independent of N: O(B * heads * Q)
