"""Finish PEM's panoptic inference on the host from the graph's small per-query outputs (numpy only).

Equals the reference's ``panoptic_inference`` (training.model.postprocess) given the graph outputs of
export/deploy_model.py: queries in index order; a kept query that wins no pixel, has an empty mask, or
keeps less than ``overlap_threshold`` of its mask is dropped; stuff queries of one class share a
segment id. Cost O(Q + H*W): one bincount and one lookup-table gather.
"""

from __future__ import annotations

import numpy as np

from pem_rt.model_meta import VOID_WINNER
from pem_rt.segments import Segment


def assemble_panoptic(
    query_labels: np.ndarray,
    winner: np.ndarray,
    winner_area: np.ndarray,
    mask_area: np.ndarray,
    thing_ids: tuple[int, ...] | frozenset[int],
    overlap_threshold: float,
) -> tuple[np.ndarray, list[Segment]]:
    """One image: [Q] int, [H, W] uint8, [Q] int, [Q] int -> (segment map int32 [H, W], segments)."""
    num_queries = query_labels.shape[0]
    final_area = np.bincount(winner.ravel(), minlength=VOID_WINNER + 1)[:num_queries]
    lut = np.zeros(VOID_WINNER + 1, dtype=np.int32)  # winner value -> segment id (0 = void)
    segments: list[Segment] = []
    stuff_segment: dict[int, int] = {}
    things = set(thing_ids)
    for k in np.flatnonzero(query_labels >= 0):
        won, own, final = int(winner_area[k]), int(mask_area[k]), int(final_area[k])
        if won == 0 or own == 0 or final == 0 or won / own < overlap_threshold:
            continue
        cls = int(query_labels[k])
        isthing = cls in things
        if not isthing and cls in stuff_segment:
            lut[k] = stuff_segment[cls]
            continue
        seg_id = len(segments) + 1
        if not isthing:
            stuff_segment[cls] = seg_id
        lut[k] = seg_id
        segments.append(Segment(seg_id, cls, isthing))
    return lut[winner], segments
