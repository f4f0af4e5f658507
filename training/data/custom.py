"""Datasets described by `DIR/dataset.yaml` (see training/data/spec.py): semantic folders, COCO JSON.

:func:`custom_meta` gives the dataset's classes (what the model is built for), :func:`open_custom` one
split as a :class:`~training.data.records.DatasetSource`. Masks hold class indices; ``ignore_index``
becomes the void id 255 the rest of training uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pem_rt.errors import PemError
from pem_rt.images import IMAGE_SUFFIXES, is_image
from training.data.coco_json import CocoInstances, CocoPanopticCustom, category_names, read_json
from training.data.records import IGNORE, DatasetSource, GroundTruth, Record, read_label
from training.data.spec import DatasetSpec, load_spec
from training.dataset_meta import DatasetMeta


def custom_meta(spec: DatasetSpec, split: str = "train") -> DatasetMeta:
    """Classes of the dataset: from dataset.yaml, or for COCO layouts from the ``split`` json's categories."""
    if spec.names or spec.layout == "folders":
        return spec.meta()
    paths = spec.split(split)
    assert paths.annotations is not None
    names, things = category_names(read_json(paths.annotations))
    return spec.meta(names, things if spec.layout == "coco-panoptic" else None)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image(p) and p.is_file())


def to_train_ids(mask: np.ndarray, ignore_index: int, num_classes: int, path: Path) -> np.ndarray:
    """A mask of class indices -> uint8 with void 255; ids outside ``names`` are a PemError."""
    values = mask.astype(np.int64)
    void = values == ignore_index
    bad = (~void) & ((values < 0) | (values >= num_classes))
    if bad.any():
        ids = sorted({int(v) for v in np.unique(values[bad])})[:8]
        raise PemError(
            f"{path}: class ids {ids} are not in names (0..{num_classes - 1}, ignore {ignore_index}); "
            "run `pem dataset check`"
        )
    out = (
        values.astype(np.uint8) if ignore_index == IGNORE else np.where(void, IGNORE, values).astype(np.uint8)
    )
    return out


class SemanticFolders(DatasetSource):
    """A split of a ``format: folders`` dataset: images/<split>/* and masks/<split>/<stem>.png."""

    name = "custom"

    def __init__(self, spec: DatasetSpec, split: str, meta: DatasetMeta) -> None:
        super().__init__(spec.root, split)
        self.meta = meta
        self.ignore_index = spec.ignore_index
        paths = spec.split(split)
        assert paths.masks is not None
        if not paths.images.is_dir():
            raise PemError(f"{paths.images} does not exist: split {split} of {spec.file} has no images")
        images = list_images(paths.images)
        if not images:
            raise PemError(
                f"{paths.images} holds no images ({', '.join(IMAGE_SUFFIXES)}): split {split} is empty"
            )
        for img in images:
            mask = paths.masks / f"{img.stem}.png"
            if not mask.is_file():
                raise PemError(f"{mask} is missing (the mask of {img.name}); run `pem dataset check`")
            self.records.append(Record(stem=img.stem, image=img, semantic=mask))

    def ground_truth(self, record: Record, panoptic: bool) -> GroundTruth:
        if panoptic:
            raise PemError(
                f"{self.root}: semantic folders have no instances; train panoptic models on format: coco"
            )
        assert record.semantic is not None
        mask = read_label(record.semantic)
        return GroundTruth(to_train_ids(mask, self.ignore_index, len(self.meta.classes), record.semantic))


def open_custom(root: Path, split: str, panoptic: bool) -> DatasetSource:
    spec = load_spec(root)
    meta = custom_meta(spec)
    if spec.layout == "folders":
        if panoptic:
            raise PemError(
                f"{spec.file}: semantic folders have no instances; panoptic training needs format: coco "
                "or coco-panoptic"
            )
        return SemanticFolders(spec, split, meta)
    if spec.layout == "coco":
        return CocoInstances(spec, split, meta)
    return CocoPanopticCustom(spec, split, meta)
