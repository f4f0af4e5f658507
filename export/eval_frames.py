"""Frames to measure accuracy on, with ground truth where there is some: a dataset split, or an image
folder / video / "skimage" (`pem compare`, and the INT8 sensitivity and budget's held-out frames)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.frames import fit_frame, fit_labels, read_frames
from pem_rt.errors import PemError


@dataclass
class EvalFrames:
    images: np.ndarray  # uint8 BGR [N, H, W, 3] at the model's size
    # uint8 [N, H, W] ground truth (255 = void), when the frames come from a dataset
    labels: np.ndarray | None
    names: list[str]


@dataclass(frozen=True)
class EvalSource:
    """data: a dataset root (frames and ground truth of ``split``, layout ``dataset``); else ``frames``:
    an image folder, a video or "skimage"."""

    data: Path | None = None
    dataset: str = "cityscapes"
    split: str = "val"
    frames: str = "skimage"


def load_eval_frames(source: EvalSource, size: tuple[int, int], max_frames: int) -> EvalFrames:
    """The first ``max_frames`` of a dataset split (with ground truth), else evenly spread frames."""
    if source.data is not None:
        import cv2

        from training.data.loader import open_dataset

        ds = open_dataset(source.dataset, source.data, source.split, panoptic=False)
        if len(ds) == 0:
            raise PemError(f"--data {source.data} has no images in split '{source.split}'")
        records = ds.records[:max_frames]
        images, labels = [], []
        for r in records:
            img = cv2.imread(str(r.image), cv2.IMREAD_COLOR)
            if img is None:
                raise PemError(f"cannot read image {r.image}")
            images.append(fit_frame(img, size))
            labels.append(fit_labels(ds.ground_truth(r, panoptic=False).semantic, size))
        return EvalFrames(np.stack(images), np.stack(labels), [r.stem for r in records])
    frames = read_frames(source.frames, size, max_frames)
    return EvalFrames(frames, None, [f"frame{i:03d}" for i in range(len(frames))])
