"""The deployable model: uint8 BGR NHWC frames in, small integer maps out (shared/DESIGN.md contract).

Pre-processing (cast, BGR->RGB, ImageNet normalisation, NHWC->NCHW) and post-processing run inside
the graph so the host does no per-pixel float work and never copies Q x H x W masks back:

- semantic: ``labels`` uint8 [N, H, W] = argmax_k sum_q softmax(cls)[q, k] * sigmoid(mask)[q] at the
  frame resolution (the reference's semantic inference);
- panoptic: per query ``query_labels`` int32 [N, Q] (class, or -1 when the query is dropped by the
  object-mask threshold or votes "no object"), ``query_scores`` float [N, Q]; per pixel ``winner``
  uint8 [N, H, W] (the kept query with the largest score * mask probability, 255 where that query's own
  mask probability is < 0.5); per query ``winner_area`` (pixels it wins) and ``mask_area`` (pixels of its
  own mask >= 0.5), int32 [N, Q]. The host finishes the reference's panoptic inference (overlap
  threshold, stuff merging) in O(Q + HW) from these (runtime/panoptic.py).

``postprocess`` chooses how mask-resolution logits (1/4 of the frame) reach the frame resolution:

- ``exact`` (the reference's order): all Q mask logits are up-sampled to the frame, then combined per pixel;
- ``fast``: combined at mask resolution, then only the result is up-sampled. Semantic: the labels are
  taken at mask resolution; a frame pixel whose four bilinear source pixels agree takes their label, and
  only the pixels on edges between classes are computed as ``exact`` does, from their sources' Q mask
  logits (a data-dependent number of pixels: NonZero, Gather and ScatterND in the graph). The debug
  ``scores`` of a fast graph are the mask-resolution scores up-sampled (where K > Q, exact's), which the
  labels refine on the edges. Panoptic likewise: the winning query is chosen at mask resolution; inside
  a cell of one winner the own-mask test (winner's mask probability >= 0.5) uses the winner's mask logit
  up-sampled bilinearly, and the edge cells are computed as exact does; ``winner_area`` and
  ``mask_area`` are counted at mask resolution and scaled to frame pixels. Same outputs, same shapes.

``debug=True`` adds the float tensors before the argmax (``class_logits``, ``mask_logits`` and, for
semantic, ``scores`` [N, K, H, W]) to compare backends.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pem_rt.model_meta import (
    DEFAULT_POSTPROCESS,
    PANOPTIC_OUTPUTS,
    POSTPROCESS_MODES,
    SEMANTIC_OUTPUTS,
    VOID_WINNER,
)
from training.model import PEM
from training.model.postprocess import Cells, resize_masks, semantic_labels_at, semantic_scores


class DeployModel(nn.Module):
    """Wrap a PEM for export. Args: model (eval mode is forced), task, debug outputs, postprocess mode."""

    def __init__(
        self, model: PEM, task: str, debug: bool = False, postprocess: str = DEFAULT_POSTPROCESS
    ) -> None:
        super().__init__()
        if task not in ("semantic", "panoptic"):
            raise ValueError(f"task must be semantic or panoptic, not {task}")
        if postprocess not in POSTPROCESS_MODES:
            raise ValueError(f"postprocess must be one of {', '.join(POSTPROCESS_MODES)}, not {postprocess}")
        self.model = model.eval()
        self.task = task
        self.debug = debug
        self.fast = postprocess == "fast"
        cfg = model.cfg
        self.num_classes = cfg.num_classes
        self.object_mask_threshold = cfg.inference.object_mask_threshold
        if cfg.num_classes >= 255 or cfg.decoder.num_queries >= VOID_WINNER:
            raise ValueError("uint8 outputs need fewer than 255 classes and queries")

    @property
    def output_names(self) -> list[str]:
        names = list(SEMANTIC_OUTPUTS if self.task == "semantic" else PANOPTIC_OUTPUTS)
        if self.debug:
            names += ["class_logits", "mask_logits"] + (["scores"] if self.task == "semantic" else [])
        return names

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        """image: uint8 [N, H, W, 3] BGR, exactly an OpenCV frame."""
        out = self.model(self.preprocess(image), all_predictions=False)
        return self.postprocess(out.class_logits, out.mask_logits, (int(image.shape[1]), int(image.shape[2])))

    def preprocess(self, image: Tensor) -> Tensor:
        """uint8 BGR [N, H, W, 3] -> the network's normalised float RGB input [N, 3, H, W]."""
        # cast first: TensorRT allows a uint8 tensor only as the input of a Cast
        rgb = image.float().permute(0, 3, 1, 2).flip(1)
        return self.model.normalize(rgb)

    def postprocess(
        self, class_logits: Tensor, mask_logits: Tensor, size: tuple[int, int]
    ) -> tuple[Tensor, ...]:
        """Class logits [N, Q, K+1] and mask logits at mask resolution -> the graph's outputs at ``size``."""
        debug = (class_logits, mask_logits)
        if self.task == "semantic":
            if self.fast:
                labels = semantic_labels_at(class_logits, mask_logits, size, fast=True).to(torch.uint8)
                if not self.debug:
                    return (labels,)
                return (labels, *debug, semantic_scores(class_logits, mask_logits, size, fast=True))
            scores = semantic_scores(class_logits, mask_logits, size, fast=False)
            labels = scores.argmax(dim=1).to(torch.uint8)
            return (labels, *debug, scores) if self.debug else (labels,)
        if self.fast:
            panoptic = self._panoptic_fast(class_logits, mask_logits, size)
        else:
            panoptic = self._panoptic(class_logits, resize_masks(mask_logits, size))
        return (*panoptic, *debug) if self.debug else panoptic

    def _kept_queries(self, class_logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Best class score, its label and whether the query is kept (a real class above the threshold)."""
        scores, labels = F.softmax(class_logits, dim=-1).max(dim=-1)  # [N, Q]
        keep = labels.ne(self.num_classes) & (scores > self.object_mask_threshold)
        return scores, labels, keep

    def _panoptic(self, class_logits: Tensor, masks: Tensor) -> tuple[Tensor, ...]:
        scores, labels, keep = self._kept_queries(class_logits)
        prob = masks.sigmoid()  # [N, Q, H, W]
        weighted = torch.where(keep[:, :, None, None], scores[:, :, None, None] * prob, -1.0)
        winner = weighted.argmax(dim=1)  # [N, H, W]; among kept queries (first index on ties)
        own = prob.gather(1, winner.unsqueeze(1)).squeeze(1) >= 0.5
        winner_kept = keep.gather(1, winner.flatten(1)).view_as(winner)
        return (
            torch.where(keep, labels, -1).to(torch.int32),
            scores,
            torch.where(own & winner_kept, winner, VOID_WINNER).to(torch.uint8),
            _areas(winner, prob.shape[1]).to(torch.int32),
            (prob >= 0.5).sum(dim=(2, 3)).to(torch.int32),
        )

    def _panoptic_fast(
        self, class_logits: Tensor, mask_logits: Tensor, size: tuple[int, int]
    ) -> tuple[Tensor, ...]:
        scores, labels, keep = self._kept_queries(class_logits)
        prob = mask_logits.sigmoid()  # [N, Q, h, w]: mask resolution
        weighted = torch.where(keep[:, :, None, None], scores[:, :, None, None] * prob, -1.0)
        winner = weighted.argmax(dim=1)  # [N, h, w]
        cells = Cells.of(winner, mask_logits, size)
        if cells is None:
            return self._panoptic(class_logits, resize_masks(mask_logits, size))
        # inside a cell of one winner: that query, where its own up-sampled mask logit is >= 0 (prob >= 0.5)
        kept_winner = torch.where(keep.gather(1, winner.flatten(1)).view_as(winner), winner, VOID_WINNER)
        own = cells.upsample_corners(mask_logits.gather(1, winner.unsqueeze(1)).squeeze(1))
        inside = torch.where(own >= 0.0, cells.inside(kept_winner), VOID_WINNER)
        # edge cells: every query's up-sampled mask, as exact computes them
        edge_weighted = torch.where(keep[:, None, :], scores[:, None, :] * cells.logits.sigmoid(), -1.0)
        edge_winner = edge_weighted.argmax(dim=2)  # [N, capacity * fy * fx]
        edge_own = cells.logits.gather(2, edge_winner.unsqueeze(2)).squeeze(2) >= 0.0
        edge_kept = keep.gather(1, edge_winner)
        edges = torch.where(edge_own & edge_kept, edge_winner, VOID_WINNER)
        scale = float(size[0] * size[1]) / float(prob.shape[2] * prob.shape[3])  # frame pixels per mask pixel
        return (
            torch.where(keep, labels, -1).to(torch.int32),
            scores,
            cells.paint(inside, edges, size).to(torch.uint8),
            (_areas(winner, prob.shape[1]).float() * scale).round().to(torch.int32),
            ((mask_logits >= 0.0).sum(dim=(2, 3)).float() * scale).round().to(torch.int32),
        )


def _areas(winner: Tensor, num_queries: int) -> Tensor:
    """Pixels each query wins: [N, H, W] indices -> [N, Q] counts."""
    queries = torch.arange(num_queries, device=winner.device)
    return (winner.unsqueeze(1) == queries[None, :, None, None]).sum(dim=(2, 3))
