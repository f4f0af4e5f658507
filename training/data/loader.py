"""Datasets as torch datasets: opening a source by name, training samples, batching, sampling.

Training samples are addressed by ``(index, seed)`` keys: :class:`TrainSampler` draws the order with
torch's DistributedSampler (shuffled per epoch, sharded per rank) and gives each sample a seed derived
from (run seed, epoch, index), so a sample's augmentation does not depend on workers or on where a
resumed run started, and a run resumed at step s sees exactly the data the uninterrupted run saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from pem_rt.errors import PemError
from training.data.ade20k import ADE20K
from training.data.cityscapes import Cityscapes
from training.data.coco_panoptic import COCOPanoptic
from training.data.custom import open_custom
from training.data.records import DatasetSource, read_rgb
from training.data.targets import panoptic_targets, semantic_targets
from training.data.transforms import AugmentConfig, augment

BENCHMARKS = ("cityscapes", "ade20k", "coco-panoptic")
DATASET_NAMES = (*BENCHMARKS, "custom")  # custom: any dataset described by DIR/dataset.yaml
# (crop, base short side, eval short side or None = native) per dataset, as the reference configures
DEFAULTS: dict[str, tuple[tuple[int, int], int, int | None]] = {
    "cityscapes": ((512, 1024), 1024, None),
    "ade20k": ((512, 512), 512, 512),
    "coco-panoptic": ((1024, 1024), 1024, 800),
    "custom": ((512, 512), 512, None),
}
PAD_RGB = (124, 116, 104)  # ImageNet mean: padding normalises to ~0


def open_dataset(name: str, root: str | Path, split: str, panoptic: bool) -> DatasetSource:
    """The ``split`` of dataset ``name`` under ``root``; a wrong root is a one-line PemError."""
    root = Path(root)
    if not root.is_dir():
        raise PemError(
            f"dataset root {root} does not exist; pass --data DIR (the folder of the {name} files)"
        )
    if name == "cityscapes":
        return Cityscapes(root, split)
    if name == "ade20k":
        return ADE20K(root, split, panoptic=panoptic)
    if name == "coco-panoptic":
        return COCOPanoptic(root, split)
    return open_custom(root, split, panoptic)  # "custom", or a checkpoint's own dataset name


def dataset_defaults(name: str) -> tuple[tuple[int, int], int, int | None]:
    """(crop, base short side, eval short side) of a benchmark, or the custom datasets' defaults."""
    return DEFAULTS.get(name, DEFAULTS["custom"])


class TrainDataset(Dataset[dict[str, Any]]):
    """Augmented training samples: ``{"image": uint8 [3, H, W], "labels", "masks"}``."""

    def __init__(self, source: DatasetSource, augment_cfg: AugmentConfig, panoptic: bool) -> None:
        self.source = source
        self.augment_cfg = augment_cfg
        self.panoptic = panoptic

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        record = self.source.records[index]
        rng = np.random.default_rng(seed)
        image = read_rgb(record.image)
        gt = self.source.ground_truth(record, self.panoptic)
        maps = [gt.panoptic] if self.panoptic and gt.panoptic is not None else [gt.semantic]
        if maps[0].shape != image.shape[:2]:
            raise PemError(
                f"{record.image.name}: image {image.shape[:2]} and ground truth {maps[0].shape} differ"
            )
        image, maps = augment(image, maps, self.augment_cfg, rng)
        if self.panoptic:
            assert gt.segments is not None
            target = panoptic_targets(maps[0], gt.segments)
        else:
            target = semantic_targets(maps[0])
        return {"image": torch.from_numpy(image).permute(2, 0, 1).contiguous(), **target}


class EvalDataset(Dataset[dict[str, Any]]):
    """Unaugmented images with their ground truth at full resolution."""

    def __init__(
        self, source: DatasetSource, panoptic: bool, limit: int | None = None, with_image: bool = True
    ) -> None:
        self.source = source
        self.panoptic = panoptic
        self.with_image = with_image
        self.records = source.records[:limit] if limit else source.records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        gt = self.source.ground_truth(record, self.panoptic)
        return {
            "stem": record.stem,
            "image": torch.from_numpy(read_rgb(record.image)) if self.with_image else None,  # uint8 [H, W, 3]
            "semantic": gt.semantic,
            "panoptic": gt.panoptic,
            "segments": gt.segments,
        }


def collate_train(samples: list[dict[str, Any]], divisibility: int = 32) -> dict[str, Any]:
    """Stack images padded (bottom/right) to a common size divisible by ``divisibility``; targets keep
    their own masks, zero-padded to that size."""
    h = max(s["image"].shape[1] for s in samples)
    w = max(s["image"].shape[2] for s in samples)
    h, w = -(-h // divisibility) * divisibility, -(-w // divisibility) * divisibility
    images = torch.tensor(PAD_RGB, dtype=torch.uint8).view(1, 3, 1, 1).repeat(len(samples), 1, h, w)
    targets = []
    for i, s in enumerate(samples):
        ih, iw = s["image"].shape[1:]
        images[i, :, :ih, :iw] = s["image"]
        masks = torch.zeros((s["masks"].shape[0], h, w), dtype=torch.bool)
        masks[:, :ih, :iw] = s["masks"]
        targets.append({"labels": s["labels"], "masks": masks})
    return {"images": images, "targets": targets}


def collate_first(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return samples[0]


class TrainSampler(Sampler[tuple[int, int]]):
    """This rank's share of one epoch as ``(index, seed)`` keys, optionally skipping the first ones."""

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.seed = seed
        self.inner: DistributedSampler[int] = DistributedSampler(
            range(size),  # type: ignore[arg-type]  # only its length is used
            num_replicas=world,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=False,
        )
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner) - self.skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for n, index in enumerate(self.inner):
            if n >= self.skip:
                seq = np.random.SeedSequence([self.seed, self.epoch, index])
                yield index, int(seq.generate_state(1)[0])
