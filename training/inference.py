"""Whole-image inference of a PEM model as the reference evaluates: optional resize of the short side,
pad to a multiple of 32, upsample the mask logits to the padded size, crop, resize back to the image
size, then semantic (and panoptic) post-processing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from pem_rt.segments import Segment
from training.data.transforms import resize_image, shortest_edge_size
from training.model import PEM
from training.model.postprocess import panoptic_inference, resize_masks, semantic_labels


@dataclass
class ImagePrediction:
    semantic: np.ndarray  # uint8 [H, W], contiguous class ids
    panoptic: np.ndarray | None = None  # int32 [H, W], 0 = void
    segments: list[Segment] | None = None


@torch.no_grad()
def predict(
    model: PEM, image: np.ndarray, panoptic: bool = False, short_side: int | None = None
) -> ImagePrediction:
    """image: RGB uint8 [H, W, 3] -> predictions at [H, W]. ``model`` must be in eval mode."""
    h, w = image.shape[:2]
    if short_side is not None:
        size = shortest_edge_size(h, w, short_side, 4 * short_side)
        if size != (h, w):
            image = resize_image(image, size)
    rh, rw = image.shape[:2]
    device = model.pixel_mean.device
    x = model.normalize(torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None])
    div = model.cfg.size_divisibility
    ph, pw = -(-rh // div) * div, -(-rw // div) * div
    x = F.pad(x, (0, pw - rw, 0, ph - rh))
    out = model(x, all_predictions=False)
    masks = resize_masks(out.mask_logits, (ph, pw))[:, :, :rh, :rw]
    if (rh, rw) != (h, w):
        masks = resize_masks(masks, (h, w))
    semantic = semantic_labels(out.class_logits, masks)[0].to(torch.uint8).cpu().numpy()
    if not panoptic:
        return ImagePrediction(semantic)
    inf = model.cfg.inference
    seg, segments = panoptic_inference(
        out.class_logits[0],
        masks[0],
        model.cfg.dataset.thing_ids,
        inf.object_mask_threshold,
        inf.overlap_threshold,
    )
    return ImagePrediction(semantic, seg.cpu().numpy().astype(np.int32), segments)
