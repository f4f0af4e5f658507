"""Activation ranges from a collected histogram: the KL-divergence (entropy) search of TensorRT's INT8
calibration, vectorised.

ModelOpt's PyTorch histogram calibrator runs the same search in Python loops over every bin for every
candidate range: seconds per quantizer for its 2048 bins, and its histograms grow bins as larger
activations arrive, so the tiny model's QAT set-up took more than 25 minutes on two cores. This one
gives the same range (the same candidates, the same quantised distribution, the same divergence and
tie-break) in numpy.
"""

from __future__ import annotations

import numpy as np


def entropy_amax(
    hist: np.ndarray,
    edges: np.ndarray,
    num_bits: int = 8,
    unsigned: bool = False,
    stride: int = 1,
    start_bin: int = 128,
) -> float:
    """The amax (a bin edge) whose ``num_bits`` quantisation of the histogram ``hist`` (of |x|, bin
    edges ``edges``) diverges least from it: for each candidate first ``i`` bins, what lies beyond
    goes into the last kept bin, the kept bins are merged into 2^(bits-1) (or 2^bits unsigned) levels
    spread back over their non-empty bins, and the KL divergence of the kept vs the merged
    distribution is measured; the last of the smallest divergences wins."""
    bins = np.asarray(hist, dtype=np.float64).copy()
    bins[0] = bins[1]  # the spike at zero (ReLU outputs) would dominate every divergence
    levels = 1 << (num_bits - 1 + int(unsigned))
    beyond = np.concatenate([np.cumsum(bins[::-1])[::-1], [0.0]])  # beyond[i] = sum(bins[i:])
    divergences = []
    for i in range(start_bin, len(bins) + 1, stride):
        kept = bins[:i]
        level = np.digitize(np.arange(i), np.linspace(0, i, num=levels + 1)) - 1
        filled = kept != 0
        sums = np.bincount(level[filled], weights=kept[filled], minlength=levels)
        counts = np.bincount(level[filled], minlength=levels)
        spread = np.divide(sums, counts, out=np.zeros(levels), where=counts > 0)
        merged = np.where(filled, spread[level], 0.0)
        reference = kept.copy()
        reference[-1] += beyond[i]
        divergences.append(_kl(reference, merged))
    scores = np.asarray(divergences)
    last_best = len(scores) - 1 - int(np.argmin(scores[::-1]))
    return float(edges[last_best * stride + start_bin])


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) of two unnormalised distributions (inf where q has no mass under p)."""
    p = p / np.sum(p)
    q = q / np.sum(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, np.where(q > 0, p * np.log(p / q), np.inf), 0.0)
    return float(np.sum(terms))
