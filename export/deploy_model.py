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

``debug=True`` adds the float tensors before the argmax (``class_logits``, ``mask_logits`` and, for
semantic, ``scores`` [N, K, H, W]) to compare backends.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pem_rt.model_meta import PANOPTIC_OUTPUTS, SEMANTIC_OUTPUTS, VOID_WINNER
from training.model import PEM
from training.model.postprocess import resize_masks, semantic_probabilities


class DeployModel(nn.Module):
    """Wrap a PEM for export. Args: model (eval mode is forced), task, debug outputs."""

    def __init__(self, model: PEM, task: str, debug: bool = False) -> None:
        super().__init__()
        if task not in ("semantic", "panoptic"):
            raise ValueError(f"task must be semantic or panoptic, not {task}")
        self.model = model.eval()
        self.task = task
        self.debug = debug
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
        size = (int(image.shape[1]), int(image.shape[2]))
        # cast first: TensorRT allows a uint8 tensor only as the input of a Cast
        rgb = image.float().permute(0, 3, 1, 2).flip(1)
        out = self.model(self.model.normalize(rgb), all_predictions=False)
        masks = resize_masks(out.mask_logits, size)
        debug = (out.class_logits, out.mask_logits)
        if self.task == "semantic":
            scores = semantic_probabilities(out.class_logits, masks)
            labels = scores.argmax(dim=1).to(torch.uint8)
            return (labels, *debug, scores) if self.debug else (labels,)
        panoptic = self._panoptic(out.class_logits, masks)
        return (*panoptic, *debug) if self.debug else panoptic

    def _panoptic(self, class_logits: Tensor, masks: Tensor) -> tuple[Tensor, ...]:
        scores, labels = F.softmax(class_logits, dim=-1).max(dim=-1)  # [N, Q]
        keep = labels.ne(self.num_classes) & (scores > self.object_mask_threshold)
        prob = masks.sigmoid()  # [N, Q, H, W]
        weighted = torch.where(keep[:, :, None, None], scores[:, :, None, None] * prob, -1.0)
        winner = weighted.argmax(dim=1)  # [N, H, W]; among kept queries (first index on ties)
        own = prob.gather(1, winner.unsqueeze(1)).squeeze(1) >= 0.5
        winner_kept = keep.gather(1, winner.flatten(1)).view_as(winner)
        queries = torch.arange(prob.shape[1], device=prob.device)
        winner_area = (winner.unsqueeze(1) == queries[None, :, None, None]).sum(dim=(2, 3))
        mask_area = (prob >= 0.5).sum(dim=(2, 3))
        return (
            torch.where(keep, labels, -1).to(torch.int32),
            scores,
            torch.where(own & winner_kept, winner, VOID_WINNER).to(torch.uint8),
            winner_area.to(torch.int32),
            mask_area.to(torch.int32),
        )
