"""`evaluate.py` on a checkpoint equals `evaluate.py` on the prediction files it saved (the path every
other backend takes), and the documented file format is what is written."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np

from training.checkpoint import Checkpoint, save_checkpoint
from training.evaluate import main as evaluate_main
from training.model import build_model, get_preset


def test_checkpoint_and_saved_files_give_the_same_numbers(synthetic_root: Path, tmp_path: Path) -> None:
    cfg = get_preset("cityscapes-tiny")
    # low thresholds so that an untrained model still emits panoptic segments
    cfg = dataclasses.replace(
        cfg, inference=dataclasses.replace(cfg.inference, task="panoptic", object_mask_threshold=0.0,
                                           overlap_threshold=0.0)
    )  # fmt: skip
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, Checkpoint(cfg, build_model(cfg).state_dict()))
    preds = tmp_path / "preds"
    argv = ["--data", str(synthetic_root), "--limit", "3"]
    assert evaluate_main(["--checkpoint", str(ckpt), *argv, "--save-predictions", str(preds),
                          "--json", str(tmp_path / "a.json")]) == 0  # fmt: skip
    stems = sorted(p.name for p in preds.iterdir())
    assert len(stems) == 9 and stems[0].endswith("_leftImg8bit.png")
    label = cv2.imread(str(preds / stems[0]), cv2.IMREAD_UNCHANGED)
    assert label.dtype == np.uint8 and label.shape == (64, 128) and label.max() < 19
    info = json.loads((preds / stems[1]).read_text())["segments_info"]
    assert info and all(0 <= s["category_id"] < 19 for s in info)
    assert evaluate_main(["--predictions", str(preds), *argv, "--dataset", "cityscapes", "--task", "panoptic",
                          "--json", str(tmp_path / "b.json")]) == 0  # fmt: skip
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a == b and a["summary"]["images"] == 3 and "PQ" in a["summary"]


def test_prediction_files_are_checked(synthetic_root: Path, tmp_path: Path, capsys: object) -> None:
    preds = tmp_path / "preds"
    preds.mkdir()
    argv = ["--predictions", str(preds), "--data", str(synthetic_root), "--dataset", "cityscapes"]
    assert evaluate_main(argv) == 1  # nothing saved yet: names the missing file
    for stem in ("synth_000000_000000", "synth_000000_000001"):
        cv2.imwrite(str(preds / f"{stem}_leftImg8bit.png"), np.full((64, 128), 30, np.uint8))
    assert evaluate_main([*argv, "--limit", "1"]) == 1  # class id 30 >= 19 classes
    cv2.imwrite(str(preds / "synth_000000_000000_leftImg8bit.png"), np.zeros((32, 64), np.uint8))
    assert evaluate_main([*argv, "--limit", "1"]) == 1  # wrong size
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "is missing" in err and "holds class id 30" in err and "at the image's own size" in err
