"""INT8 sensitivity and the accuracy budget, measured with ONNX Runtime on held-out frames: the tiny model
(64x128) with seeded weights on synthetic street frames, and (slow) a trained tiny model on the val split
of its dataset while calibrating on its train split."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from calibration.frames import read_frames
from export.calibrate import main
from export.export_onnx import ModelSource, export_onnx, load_model
from export.int8_budget import budget_props
from export.int8_eval import HeldOut, Yardstick
from pem_rt.engine_meta import read_sidecar
from pem_rt.onnx_props import read_props
from tests.conftest import MODEL_SIZE, TrainedTiny
from training.data.synthetic import make_scene


@pytest.fixture(scope="module")
def street_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic street frames: held out from the skimage photographs the tiny model calibrates on."""
    folder = tmp_path_factory.mktemp("street")
    rng = np.random.default_rng(3)
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), make_scene(*MODEL_SIZE, rng)[0][..., ::-1])
    return folder


@pytest.mark.slow  # two quantiser runs and 22 ONNX Runtime sessions: about a minute on 2 cores
def test_sensitivity_table_ranks_the_model_parts(
    semantic_onnx: Path, street_frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.int8.onnx"
    flags = [
        "--onnx", str(semantic_onnx), "--out", str(out), "--calib-data", "skimage", "--calib-batches", "2",
        "--calib-cache", str(tmp_path / "m.calib"), "--eval-frames", str(street_frames), "--sensitivity",
    ]  # fmt: skip
    assert main(flags) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "m.int8.sensitivity.json").read_text())
    groups = report["groups"]
    assert report["truth"] == "FP32 labels" and report["frames"] == 2 and report["fp32_mIoU"] == 1.0
    assert {"backbone.res3", "decoder.L0.pem_ca", "decoder.L2.ffn", "pixel_decoder.up1"} <= {
        g["group"] for g in groups
    }
    keys = [(g["agreement"], -g["miou_drop"]) for g in groups]
    assert keys == sorted(keys)  # most sensitive first
    assert all(0.2 < g["agreement"] <= 1.0 and g["int8_nodes"] > 0 for g in groups)
    table = (tmp_path / "m.int8.sensitivity.md").read_text()
    assert table.count("\n| ") == len(groups) + 2  # + the header and the all-groups row
    assert f"| 1 | {groups[0]['group']} |" in table and table in printed
    assert (tmp_path / "m.int8.sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert out.is_file() and budget_props(read_props(out)) == ((), None)  # a plain INT8 graph as before


def test_held_out_frames_are_checked(
    semantic_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--onnx", str(semantic_onnx), "--out", str(tmp_path / "m.int8.onnx"), "--calib-data", "skimage",
             "--calib-batches", "4"]  # fmt: skip
    assert main([*flags, "--sensitivity"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --sensitivity and --max-miou-drop measure on held-out frames")
    assert err.count("\n") == 1
    assert main([*flags, "--eval-frames", "skimage", "--eval-max-frames", "4", "--max-miou-drop", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --eval-frames skimage shares 4 of 4 frames with --calib-data")
    assert err.count("\n") == 1


@pytest.fixture(scope="module")
def trained_onnx(trained_tiny: TrainedTiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("int8_budget") / "trained_64x128.onnx"
    model = load_model(ModelSource(trained_tiny.run / "best.pt"))[0]
    export_onnx(model, path, MODEL_SIZE, "semantic")
    return path


def _trained_flags(trained_tiny: TrainedTiny, onnx_path: Path, out: Path) -> list[str]:
    train = str(trained_tiny.data / "leftImg8bit/train")
    return [
        "--onnx", str(onnx_path), "--out", str(out), "--calib-data", train, "--calib-batches", "4",
        "--eval-data", str(trained_tiny.data), "--eval-max-frames", "4",
    ]  # fmt: skip


@pytest.mark.slow
def test_budget_writes_a_measured_mix(
    trained_tiny: TrainedTiny, trained_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.int8.onnx"
    assert main([*_trained_flags(trained_tiny, trained_onnx, out), "--max-miou-drop", "0.5"]) == 0
    printed = capsys.readouterr().out
    groups, budget = budget_props(read_props(out))
    assert budget is not None and budget["max_miou_drop"] == 0.5 and budget["miou_drop"] <= 0.5
    assert "model parts kept out of INT8: " + (", ".join(groups) or "none") in printed
    assert (tmp_path / "m.int8.sensitivity.md").is_file()
    # measured, not predicted: the written graph, measured again, gives the recorded numbers
    calib = read_frames(trained_tiny.data / "leftImg8bit/train", MODEL_SIZE, 4)
    again = Yardstick(trained_onnx, HeldOut(trained_tiny.data, max_frames=4), calib).measure(out)
    assert again.drop == pytest.approx(budget["miou_drop"]) and again.agreement == budget["agreement"]
    assert any(n.op_type == "DequantizeLinear" for n in onnx.load(str(out)).graph.node)


@pytest.mark.slow
def test_budget_no_mix_meets_is_one_line(
    trained_tiny: TrainedTiny, trained_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.int8.onnx"
    assert main([*_trained_flags(trained_tiny, trained_onnx, out), "--max-miou-drop", "-50"]) == 1
    captured = capsys.readouterr()
    last = captured.err.replace("\r", "\n").splitlines()[-1]  # after any progress bar
    assert last.startswith("error: --max-miou-drop -50.0: no INT8 mix meets it") and "pem train --qat" in last
    assert captured.err.count("error:") == 1
    assert captured.out.count("budget: ") == 2  # the full INT8 graph, then every part out: fails fast
    assert not out.exists()


@pytest.mark.slow
def test_build_engine_records_the_budget_in_the_sidecar(
    semantic_onnx: Path, street_frames: Path, plugin_library: Path, tmp_path: Path
) -> None:
    from export.build_engine import main as build_main

    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(semantic_onnx.read_bytes())
    assert build_main([
        "--int8", "--onnx", str(onnx_path), "--target", "sm86", "--plugins", str(plugin_library),
        "--calib-data", "skimage", "--calib-batches", "2", "--eval-frames", str(street_frames),
        "--max-miou-drop", "100",
    ]) == 0  # fmt: skip
    sidecar = read_sidecar(next(tmp_path.glob("m.int8.sm86.rtx*.engine")))
    assert sidecar.int8_budget is not None and sidecar.int8_budget["max_miou_drop"] == 100
    assert sidecar.int8_excluded_groups == () and (tmp_path / "m.int8.sensitivity.md").is_file()
    assert budget_props(read_props(tmp_path / "m.int8.onnx"))[1] == sidecar.int8_budget
