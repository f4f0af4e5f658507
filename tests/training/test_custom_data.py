"""Datasets described by dataset.yaml: the spec file, the three layouts' readers (COCO polygons and RLE
decoded with pycocotools), architecture presets and choosing the dataset a command reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pem_rt.errors import PemError
from training.data.choose import choose_dataset
from training.data.coco_json import decode, segmentation_problem
from training.data.custom import open_custom
from training.data.loader import TrainDataset, collate_train, open_dataset
from training.data.spec import default_palette, load_spec
from training.data.synthetic_custom import CLASS_SETS, write_custom_dataset
from training.data.transforms import AugmentConfig
from training.dataset_meta import CITYSCAPES
from training.model import build_model, get_preset

NAMES = tuple(CLASS_SETS["drivable5"]["names"])


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 6 + 3 scenes written in each layout (same seed: same pictures, same truth)."""
    base = tmp_path_factory.mktemp("layouts")
    out = {}
    for layout in ("folders", "coco", "coco-panoptic"):
        out[layout] = base / layout
        write_custom_dataset(out[layout], layout, train=6, val=3, size=(64, 128), seed=6)
    return out


def test_spec_of_each_layout_gives_the_classes(layouts: dict[str, Path]) -> None:
    for layout, root in layouts.items():
        spec = load_spec(root)
        assert spec.layout == layout
        meta = spec.meta()
        assert meta.classes == NAMES
        assert meta.thing_ids == (3, 4)
        assert meta.palette[0] == (128, 64, 128)


def test_coco_names_default_to_the_json_categories(layouts: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "coco"
    root.mkdir()
    for sub in ("images", "annotations"):
        (root / sub).symlink_to(layouts["coco"] / sub)
    (root / "dataset.yaml").write_text("format: coco\nthings: [vehicle]\n")
    source = open_custom(root, "train", panoptic=False)
    assert source.meta.classes == NAMES  # category ids 1..5 in the json, in id order
    assert source.meta.thing_ids == (4,)
    assert source.meta.palette == default_palette(5)
    assert source.meta.name == "coco"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("names: [a, b]\nformat: voc\n", ["format 'voc'", "folders, coco, coco-panoptic"]),
        ("format: folders\n", ["needs `names"]),
        ("names: [a, a]\n", ["unique"]),
        ("names: [a, b]\ncolors: [[1, 2, 3]]\n", ["1 colors for 2 names"]),
        ("names: [a, b]\nthings: [c]\n", ["thing 'c'"]),
        ("names: [a, b]\nignore: 0\n", ["unknown key(s) ignore"]),
        ("names: [a, b\n", ["not valid YAML"]),
        ("- a\n- b\n", ["must hold a mapping"]),
    ],
)
def test_spec_mistakes_are_one_line_errors(tmp_path: Path, text: str, words: list[str]) -> None:
    (tmp_path / "dataset.yaml").write_text(text)
    with pytest.raises(PemError) as e:
        load_spec(tmp_path).meta()
    message = str(e.value)
    assert "\n" not in message and str(tmp_path / "dataset.yaml") in message
    for w in words:
        assert w in message, message


def test_json_spec_and_ignore_index(tmp_path: Path) -> None:
    import cv2

    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "masks" / "train").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "train" / "a.jpg"), np.zeros((4, 6, 3), np.uint8))
    mask = np.array([[0, 1, 2, 0, 0, 0]] * 4, dtype=np.uint8)  # 0 = unlabelled here
    cv2.imwrite(str(tmp_path / "masks" / "train" / "a.png"), mask)
    (tmp_path / "dataset.json").write_text(json.dumps({"names": ["x", "y", "z"], "ignore_index": 0}))
    with pytest.raises(PemError, match=r"a\.png: class ids \[3\]"):  # 3 is no class
        cv2.imwrite(str(tmp_path / "masks" / "train" / "a.png"), mask + 1)
        open_custom(tmp_path, "train", False).ground_truth(
            open_custom(tmp_path, "train", False).records[0], False
        )
    cv2.imwrite(str(tmp_path / "masks" / "train" / "a.png"), mask)
    source = open_custom(tmp_path, "train", False)
    gt = source.ground_truth(source.records[0], False).semantic
    assert gt[0].tolist() == [255, 1, 2, 255, 255, 255]


def test_coco_decoding_matches_the_drawn_masks(layouts: dict[str, Path]) -> None:
    """COCO (polygons, compressed and uncompressed RLE) and panoptic PNGs give the folders' truth."""
    data = json.loads((layouts["coco"] / "annotations" / "train.json").read_text())
    kinds = {
        "polygon" if isinstance(a["segmentation"], list) else type(a["segmentation"]["counts"]).__name__
        for a in data["annotations"]
    }
    assert kinds == {"polygon", "str", "list"}  # polygons, compressed RLE, uncompressed RLE
    assert any(a["iscrowd"] for a in data["annotations"])
    folders = open_custom(layouts["folders"], "train", False)
    coco = open_custom(layouts["coco"], "train", False)
    panoptic = open_custom(layouts["coco-panoptic"], "train", True)
    assert (
        [r.stem for r in folders.records]
        == [r.stem for r in coco.records]
        == [r.stem for r in panoptic.records]
    )
    for rf, rc, rp in zip(folders.records, coco.records, panoptic.records, strict=True):
        truth = folders.ground_truth(rf, False).semantic
        from_coco = coco.ground_truth(rc, False).semantic
        assert (from_coco == truth).mean() > 0.95  # polygons rasterise the outline a little differently
        pan = panoptic.ground_truth(rp, True)
        assert np.array_equal(pan.semantic, truth)  # PNG segment ids are exact
        gt = coco.ground_truth(rc, True)
        assert gt.panoptic is not None and gt.segments is not None
        things = [s for s in gt.segments if s.category in (3, 4)]
        stuff = [s for s in gt.segments if s.category not in (3, 4)]
        assert len({s.category for s in stuff}) == len(stuff)  # one segment per stuff class
        assert things and all((gt.panoptic == s.id).any() for s in gt.segments)


def test_decode_polygon_and_rle_by_hand() -> None:
    square = [[1, 1, 5, 1, 5, 5, 1, 5]]
    mask = decode(square, 8, 8)
    assert mask[2:5, 2:5].all() and not mask[6:, :].any() and not mask[:, 6:].any()
    ref = np.zeros((8, 8), np.uint8)
    ref[2:6, 3:7] = 1
    rle = mask_utils.encode(np.asfortranarray(ref))
    compressed = {"size": [8, 8], "counts": rle["counts"].decode()}
    assert np.array_equal(decode(compressed, 8, 8), ref.astype(bool))
    flat = ref.reshape(-1, order="F")
    runs, value, n = [], 0, 0
    for v in flat:
        if v != value:
            runs.append(n)
            value, n = v, 0
        n += 1
    runs.append(n)
    assert np.array_equal(decode({"size": [8, 8], "counts": runs}, 8, 8), ref.astype(bool))
    assert "degenerate polygon (4 coordinates" in str(segmentation_problem([[0, 0, 1, 1]], 8, 8))
    assert segmentation_problem([[0, 0, 1, 1, 2, 2]], 8, 8) is None  # zero area: only a warning
    assert "RLE size [4, 4]" in str(segmentation_problem({"size": [4, 4], "counts": [16]}, 8, 8))
    assert "sum to 64" in str(segmentation_problem({"size": [8, 8], "counts": [3, 4]}, 8, 8))
    assert "does not decode" in str(segmentation_problem({"size": [8, 8], "counts": "\x01\x02"}, 8, 8))


def test_train_samples_of_each_layout(layouts: dict[str, Path]) -> None:
    aug = AugmentConfig((64, 128), 64, (0.5, 2.0))
    for layout, panoptic in (("folders", False), ("coco", False), ("coco", True), ("coco-panoptic", True)):
        source = open_dataset("custom", layouts[layout], "train", panoptic)
        batch = collate_train([TrainDataset(source, aug, panoptic)[(i, i)] for i in range(2)])
        assert batch["images"].shape == (2, 3, 64, 128)
        labels = np.concatenate([t["labels"].numpy() for t in batch["targets"]])
        assert labels.size and labels.max() < 5


def test_semantic_folders_refuse_panoptic(layouts: dict[str, Path]) -> None:
    with pytest.raises(PemError, match="semantic folders have no instances"):
        open_custom(layouts["folders"], "train", panoptic=True)


def test_architecture_presets_take_the_data_classes(layouts: dict[str, Path]) -> None:
    dataset, meta = choose_dataset("tiny", None, layouts["coco"])
    assert dataset == "custom" and meta is not None and meta.classes == NAMES
    cfg = get_preset("tiny", meta)
    assert cfg.name == "drivable5-tiny" and cfg.num_classes == 5
    assert build_model(cfg).predictor.class_embed.out_features == 6
    assert get_preset("cityscapes-tiny").backbone == cfg.backbone  # the same network, other classes
    assert get_preset("r50").dataset == CITYSCAPES  # without data: Cityscapes' classes
    for name in ("cityscapes-r50", "ade20k-stdc1", "coco-panoptic-tiny"):  # the old names keep working
        assert get_preset(name).name == name
    assert choose_dataset("cityscapes-tiny", None, layouts["folders"])[0] == "custom"
    with pytest.raises(PemError, match=r"no dataset\.yaml"):
        choose_dataset("tiny", None, layouts["coco"] / "images")
    with pytest.raises(PemError, match="unknown preset 'tinyy'; choose an architecture"):
        get_preset("tinyy")
