"""COCO-format panoptic annotations (COCO panoptic, and ADE20K panoptic as Mask2Former prepares it).

Layout (``ROOT`` = the coco folder)::

    ROOT/annotations/panoptic_{split}2017.json
    ROOT/panoptic_{split}2017/*.png   (or ROOT/annotations/panoptic_{split}2017/*.png, as the zip unpacks)
    ROOT/{split}2017/*.jpg

PNG colours encode segment ids (id = R + 256 G + 256^2 B, 0 = void); the json lists each image's
segments with their category id and crowd flag. Category ids map to contiguous classes through
``DatasetMeta.dataset_ids`` (COCO) or are the contiguous index already (ADE20K panoptic, 0-based).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pem_rt.errors import PemError
from training.data.records import (
    DatasetSource,
    GroundTruth,
    Record,
    SegmentInfo,
    read_panoptic_png,
    semantic_from_panoptic,
)
from training.dataset_meta import COCO_PANOPTIC, DatasetMeta


def read_panoptic_json(
    json_path: Path, png_dir: Path, image_dir: Path, category_map: dict[int, int], layout: str
) -> list[Record]:
    """Records of a COCO-format panoptic json; segments of unknown categories are dropped (void)."""
    try:
        data: dict[str, Any] = json.loads(json_path.read_text())
        annotations = data["annotations"]
        images = {img["id"]: img for img in data["images"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PemError(f"{json_path} is not a COCO panoptic json ({e}); expected {layout}") from None
    try:
        records = [
            _record(ann, images, png_dir, image_dir, category_map, json_path, layout) for ann in annotations
        ]
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise PemError(
            f"{json_path}: an annotation is malformed ({type(e).__name__}: {str(e)[:80]}); expected {layout}"
        ) from None
    if not records:
        raise PemError(f"{json_path} lists no annotations: expected {layout}")
    return records


def _record(
    ann: dict[str, Any],
    images: dict[Any, Any],
    png_dir: Path,
    image_dir: Path,
    category_map: dict[int, int],
    json_path: Path,
    layout: str,
) -> Record:
    png = png_dir / str(ann["file_name"])
    image_name = str(
        images.get(ann["image_id"], {}).get("file_name", Path(str(ann["file_name"])).stem + ".jpg")
    )
    image = image_dir / image_name
    if not image.is_file():
        raise PemError(f"{image} is missing (listed in {json_path.name}): expected {layout}")
    segments = tuple(
        SegmentInfo(int(s["id"]), category_map[int(s["category_id"])], bool(s.get("iscrowd", 0)))
        for s in ann["segments_info"]
        if int(s["category_id"]) in category_map
    )
    return Record(stem=Path(image_name).stem, image=image, panoptic=png, segments=segments)


def panoptic_ground_truth(record: Record, panoptic: bool) -> GroundTruth:
    assert record.panoptic is not None and record.segments is not None
    if not record.panoptic.is_file():
        raise PemError(f"panoptic PNG {record.panoptic} is missing")
    ids = read_panoptic_png(record.panoptic)
    segments = list(record.segments)
    known = {s.id for s in segments}
    semantic = semantic_from_panoptic(ids, segments)
    if not panoptic:
        return GroundTruth(semantic)
    ids[~np.isin(ids, np.array(sorted(known), dtype=np.int64))] = 0
    return GroundTruth(semantic, ids, segments)


class COCOPanoptic(DatasetSource):
    name = "coco-panoptic"
    meta: DatasetMeta = COCO_PANOPTIC

    def __init__(self, root: Path, split: str) -> None:
        super().__init__(root, split)
        layout = (
            f"{self.root}/annotations/panoptic_{split}2017.json, {self.root}/panoptic_{split}2017/*.png "
            f"and {self.root}/{split}2017/*.jpg"
        )
        json_path = self.root / "annotations" / f"panoptic_{split}2017.json"
        if not json_path.is_file():
            raise PemError(f"{json_path} does not exist: --data must be a COCO root laid out as {layout}")
        png_dir = self.root / f"panoptic_{split}2017"
        if not png_dir.is_dir():
            png_dir = self.root / "annotations" / f"panoptic_{split}2017"
        if not png_dir.is_dir():
            raise PemError(f"no panoptic PNG folder panoptic_{split}2017: expected {layout}")
        category_map = {cid: i for i, cid in enumerate(self.meta.dataset_ids)}
        self.records = read_panoptic_json(
            json_path, png_dir, self.root / f"{split}2017", category_map, layout
        )

    def ground_truth(self, record: Record, panoptic: bool) -> GroundTruth:
        return panoptic_ground_truth(record, panoptic)
