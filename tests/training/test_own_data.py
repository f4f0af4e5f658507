"""Training on your own data, end to end: the tiny architecture on 5 custom classes (semantic folders and
COCO instances) reaches val mIoU 0.70; its names reach the ONNX metadata, the stream's legend (checked on
a recorded frame) and `pem evaluate`; a panoptic model with 2 thing and 2 stuff classes is scored by
`pem evaluate --task panoptic`; fine-tuning from the demo's Cityscapes-trained checkpoint reaches the
from-scratch final mIoU in at most half the steps. Real training runs, shared through session fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import CUSTOM_RECIPE, TrainedCustom, TrainedTiny
from training.data.synthetic_custom import CLASS_SETS

REPO = Path(__file__).resolve().parents[2]
NAMES = tuple(CLASS_SETS["drivable5"]["names"])


def pem(*args: str | Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pem_rt.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _final(run: TrainedCustom) -> dict[str, float]:
    summary = json.loads((run.run / "summary.json").read_text())
    final: dict[str, float] = summary["final"]
    return final


def test_semantic_folders_train_the_tiny_preset_to_070(custom_folders_run: TrainedCustom) -> None:
    final = _final(custom_folders_run)
    assert final["mIoU"] >= 0.70, custom_folders_run.log
    assert "training drivable5-tiny on custom train (96 images)" in custom_folders_run.log
    for name in NAMES:  # the final evaluation table names the custom classes
        assert any(line.startswith(name) for line in custom_folders_run.log.splitlines()), name


@pytest.mark.slow
def test_coco_instances_train_the_tiny_preset_to_070(custom_coco_run: TrainedCustom) -> None:
    assert _final(custom_coco_run)["mIoU"] >= 0.70, custom_coco_run.log
    assert "training drivable5-tiny on custom train (96 images)" in custom_coco_run.log


def _legend_box(meta: object, frame: np.ndarray, labels: np.ndarray) -> tuple[slice, slice]:
    """Where the legend of ``labels`` is drawn on ``frame``: the pixels the legend changes."""
    import runtime
    from runtime.overlay import Overlay

    result = runtime.Result(labels)
    with_legend = Overlay(meta, 0.5).render(frame, result)  # type: ignore[arg-type]
    without = Overlay(meta, 0.5, hud=False).render(frame, result)  # type: ignore[arg-type]
    ys, xs = np.nonzero((with_legend != without).any(axis=2))
    assert len(ys), "no legend drawn"
    return slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1)


def test_custom_names_reach_onnx_stream_and_evaluate(
    custom_folders_run: TrainedCustom, tmp_path: Path
) -> None:
    import dataclasses

    import onnx

    import runtime
    from pem_rt.model_meta import ModelMeta
    from runtime.overlay import Overlay

    run, data = custom_folders_run.run, custom_folders_run.data
    onnx_path = tmp_path / "drivable.onnx"
    pem("export", "--checkpoint", run / "best.pt", "--size", "128x256", "--out", onnx_path)
    proto = onnx.load(str(onnx_path), load_external_data=False)
    meta = ModelMeta.from_props({p.key: p.value for p in proto.metadata_props}, str(onnx_path))
    assert meta.classes == NAMES and meta.thing_ids == (3, 4) and meta.name == "drivable5-tiny"
    assert meta.palette[0] == (128, 64, 128)

    # the stream on the val images, 4x larger (a legend needs room): record it and save the label maps
    frames = tmp_path / "frames"
    frames.mkdir()
    for image in sorted((data / "images" / "val").glob("*.png"))[:3]:
        big = cv2.resize(cv2.imread(str(image)), (1024, 512), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(frames / image.name), big)
    video, masks = tmp_path / "stream.mp4", tmp_path / "masks"
    pem("stream", "--source", frames, "--onnx", onnx_path, "--headless", "--record", video,
        "--save-masks", masks, "--threads", "1")  # fmt: skip
    cap = cv2.VideoCapture(str(video))
    ok, recorded = cap.read()
    cap.release()
    assert ok
    frame = cv2.imread(str(frames / "00000.png"))
    labels = cv2.imread(str(masks / "00000.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == frame.shape[:2] and len(np.unique(labels)) >= 3
    other = dataclasses.replace(meta, classes=("road", "sidewalk", "building", "wall", "fence"))
    ys, xs = _legend_box(meta, frame, labels)
    ys2, xs2 = _legend_box(other, frame, labels)
    box = (
        slice(min(ys.start, ys2.start), max(ys.stop, ys2.stop)),
        slice(min(xs.start, xs2.start), max(xs.stop, xs2.stop)),
    )
    result = runtime.Result(labels)

    def error(m: ModelMeta) -> float:
        expected = Overlay(m, 0.5).render(frame, result)
        return float(np.abs(recorded[box].astype(np.int16) - expected[box].astype(np.int16)).mean())

    assert error(meta) < 0.6 * error(other), (error(meta), error(other))  # the custom names, not others

    # pem evaluate: per-class IoU under the custom names, of the checkpoint and of the stream's label maps
    out = pem("evaluate", "--checkpoint", run / "best.pt", "--data", data, "--json", tmp_path / "eval.json")
    table = {line.split()[0]: line for line in out.stdout.splitlines() if line.split()}
    for name in NAMES:
        assert name in table and float(table[name].split()[1]) > 0, out.stdout
    report = json.loads((tmp_path / "eval.json").read_text())
    assert [row["class"] for row in report["per_class"]] == list(NAMES)
    assert report["dataset"] == "drivable5" and report["summary"]["mIoU"] >= 0.70
    preds = tmp_path / "preds"
    pem("stream", "--source", data / "images" / "val", "--onnx", onnx_path, "--headless",
        "--save-masks", preds, "--threads", "1")  # fmt: skip
    scored = pem("evaluate", "--predictions", preds, "--data", data, "--json", tmp_path / "onnx.json")
    onnx_report = json.loads((tmp_path / "onnx.json").read_text())
    assert [row["class"] for row in onnx_report["per_class"]] == list(NAMES)
    assert abs(onnx_report["summary"]["mIoU"] - report["summary"]["mIoU"]) < 0.02, scored.stdout


@pytest.mark.slow
def test_panoptic_custom_coco_is_scored(custom_panoptic_run: TrainedCustom, tmp_path: Path) -> None:
    run, data = custom_panoptic_run.run, custom_panoptic_run.data
    out = pem("evaluate", "--checkpoint", run / "best.pt", "--data", data, "--task", "panoptic",
              "--json", tmp_path / "pq.json")  # fmt: skip
    assert "PQ " in out.stdout and "things PQ" in out.stdout
    report = json.loads((tmp_path / "pq.json").read_text())
    rows = {row["class"]: row for row in report["per_class"]}
    assert list(rows) == ["drivable", "surroundings", "pedestrian", "vehicle"]
    assert [rows[n]["thing"] for n in rows] == [False, False, True, True]
    assert 0 < report["summary"]["PQ"] <= 1 and report["summary"]["PQ_th"] > 0
    assert rows["drivable"]["PQ"] > 0.5


@pytest.mark.slow
def test_finetuning_reaches_scratch_in_half_the_steps(
    trained_tiny: TrainedTiny, custom_folders_run: TrainedCustom, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/bench_finetune.py"), "--data", str(custom_folders_run.data),
         "--weights", str(trained_tiny.run / "best.pt"), "--scratch-run", str(custom_folders_run.run),
         "--out", str(tmp_path), "--finetune-stop-at", "125", "--", *CUSTOM_RECIPE],
        capture_output=True, text=True, timeout=2400, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "finetune_vs_scratch.json").read_text())
    assert report["ratio"] <= 0.5 and report["finetune_step"] <= 125
    assert "re-initialised 2 tensors" in result.stdout
    plot = cv2.imread(str(tmp_path / "finetune_vs_scratch.png"))
    assert plot is not None and plot.std() > 10
