"""`pem dataset check` finds every fault planted in a broken copy of a dataset (one line each, with the file,
exit 1) and passes the good dataset (exit 0) with its bar chart; `pem train` refuses the broken copy before
its first step. Real CLI subprocesses on datasets written by the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.data.synthetic_custom import write_custom_dataset

REPO = Path(__file__).resolve().parents[2]


def pem(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pem_rt.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("check")
    out = {}
    for layout in ("folders", "coco"):
        out[layout] = base / layout
        write_custom_dataset(out[layout], layout, train=6, val=2, size=(64, 128), seed=3)
    return out


def _problem_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    lines = result.stdout.splitlines()
    start = lines.index("problems:") + 1
    return [line.strip() for line in lines[start:] if line.startswith("  ")]


def _expect_each_once(lines: list[str], faults: list[tuple[str, str]]) -> None:
    for path, words in faults:
        hits = [line for line in lines if line.startswith(f"{path}:") and words in line]
        assert len(hits) == 1, (path, words, lines)
    errors = [line for line in lines if ": warning: " not in line]
    assert len(errors) == len(faults), "\n".join(errors)


@pytest.mark.parametrize("layout", ["folders", "coco"])
def test_good_dataset_passes_with_a_chart(good: dict[str, Path], tmp_path: Path, layout: str) -> None:
    chart = tmp_path / "classes.png"
    result = pem("dataset", "check", "--data", good[layout], "--chart", chart, "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stdout and result.stdout.strip().endswith("dataset: PASSED")
    for name in ("drivable", "sidewalk", "background", "pedestrian", "vehicle"):
        assert any(line.startswith(name) for line in result.stdout.splitlines())
    assert "train: 6 images  val: 2 images" in result.stdout
    image = cv2.imread(str(chart))
    assert image is not None and image.shape[0] > 200 and image.std() > 10


def test_every_fault_of_a_broken_folder_dataset(good: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(good["folders"], root)
    images, masks = root / "images" / "train", root / "masks" / "train"
    cv2.imwrite(str(masks / "00000.png"), np.zeros((32, 64), np.uint8))  # wrong size
    mask = cv2.imread(str(masks / "00001.png"), cv2.IMREAD_UNCHANGED)
    mask[:4, :4] = 7
    cv2.imwrite(str(masks / "00001.png"), mask)  # class id 7 of 5 names
    (images / "00002.png").write_bytes(b"not a picture")  # unreadable image
    (masks / "00003.png").unlink()  # missing mask
    cv2.imwrite(str(masks / "00004.png"), np.zeros((64, 128, 3), np.uint8))  # 3 channels
    (masks / "00005.png").write_bytes(b"\x89PNG broken")  # unreadable mask
    for p in (root / "images" / "val").iterdir():
        p.unlink()  # empty split
    (masks / "stray.png").write_bytes((masks / "00000.png").read_bytes())  # warning only
    result = pem("dataset", "check", "--data", root, "--no-chart", "--no-progress")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.strip().endswith("dataset: FAILED")
    lines = _problem_lines(result)
    _expect_each_once(
        lines,
        [
            (str(masks / "00000.png"), "mask is 64x32 but its image is 128x64"),
            (str(masks / "00001.png"), "class ids [7] are not in names (0..4"),
            (str(images / "00002.png"), "image is unreadable"),
            (str(masks / "00003.png"), "mask is missing"),
            (str(masks / "00004.png"), "mask has 3 channels"),
            (str(masks / "00005.png"), "mask is unreadable"),
            (str(root / "images" / "val"), "split val is empty"),
        ],
    )
    assert any(line.startswith(f"{masks / 'stray.png'}: warning: mask without an image") for line in lines)
    # pem train runs the same check before the first step: the same lines, no training
    train = pem("train", "--preset", "tiny", "--data", root, "--out", tmp_path / "run", "--iters", "2",
                "--workers", "0", "--no-progress")  # fmt: skip
    assert train.returncode == 1 and "Traceback" not in train.stderr
    assert "7 problem(s)" in train.stderr and "mask is missing" in train.stderr
    assert "training " not in train.stdout and not (tmp_path / "run").exists()


def test_every_fault_of_a_broken_coco_dataset(good: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(good["coco"], root)
    ann_path = root / "annotations" / "train.json"
    data = json.loads(ann_path.read_text())
    anns = data["annotations"]
    anns[0]["category_id"] = 99  # unknown category
    anns[1]["image_id"] = 77  # unknown image
    anns[2]["segmentation"] = [[1.0, 1.0, 5.0, 5.0]]  # degenerate polygon
    rle = next(a for a in anns[3:] if isinstance(a["segmentation"], dict))
    rle["segmentation"]["size"] = [10, 10]  # RLE of another size
    data["categories"].append({"id": 9, "name": "tree"})  # a category not in names
    ann_path.write_text(json.dumps(data))
    image3 = root / "images" / "train" / "00003.jpg"
    cv2.imwrite(str(image3), cv2.resize(cv2.imread(str(image3)), (100, 64)))  # not the json's size
    (root / "images" / "train" / "00001.jpg").unlink()  # missing image
    (root / "annotations" / "val.json").write_text("{not json")  # unreadable annotations
    result = pem("dataset", "check", "--data", root, "--no-chart", "--no-progress")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = _problem_lines(result)
    _expect_each_once(
        lines,
        [
            (str(ann_path), f"annotation {anns[0]['id']}: unknown category_id 99"),
            (str(ann_path), f"annotation {anns[1]['id']}: unknown image_id 77"),
            (str(ann_path), f"annotation {anns[2]['id']} (00000.jpg): degenerate polygon (4 coordinates"),
            (str(ann_path), f"annotation {rle['id']} ("),
            (str(ann_path), "category 'tree' (id 9) is not one of names"),
            (str(image3), "image is 100x64 but train.json says 128x64"),
            (str(root / "images" / "train" / "00001.jpg"), "image is missing"),
            (str(root / "annotations" / "val.json"), "is not valid JSON"),
        ],
    )
    assert any("RLE size [10, 10] differs" in line for line in lines)
