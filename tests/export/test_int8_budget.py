"""INT8 sensitivity and the accuracy budget on a trained tiny model (64x128), measured with ONNX Runtime on
the held-out val split of its dataset while calibrating on its train split."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from calibration.frames import read_frames
from export.calibrate import main
from export.export_onnx import ModelSource, export_onnx, load_model
from export.int8_budget import budget_props
from export.int8_eval import HeldOut, Yardstick
from pem_rt.onnx_props import read_props
from tests.conftest import MODEL_SIZE, TrainedTiny


@pytest.fixture(scope="module")
def trained_onnx(trained_tiny: TrainedTiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("int8_budget") / "trained_64x128.onnx"
    model = load_model(ModelSource(trained_tiny.run / "best.pt"))[0]
    export_onnx(model, path, MODEL_SIZE, "semantic")
    return path


def _flags(trained_tiny: TrainedTiny, onnx_path: Path, out: Path) -> list[str]:
    train = str(trained_tiny.data / "leftImg8bit/train")
    return [
        "--onnx", str(onnx_path), "--out", str(out), "--calib-data", train, "--calib-batches", "4",
        "--eval-data", str(trained_tiny.data), "--eval-max-frames", "4",
    ]  # fmt: skip


def test_sensitivity_table_ranks_the_model_parts(
    trained_tiny: TrainedTiny, trained_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.int8.onnx"
    assert main([*_flags(trained_tiny, trained_onnx, out), "--sensitivity"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "m.int8.sensitivity.json").read_text())
    groups = report["groups"]
    assert report["truth"] == "ground truth" and report["frames"] == 4
    assert {"backbone.res3", "decoder.L0.pem_ca", "decoder.L2.ffn", "pixel_decoder.up1"} <= {
        g["group"] for g in groups
    }
    keys = [(-g["miou_drop"], g["agreement"]) for g in groups]
    assert keys == sorted(keys)  # most sensitive first
    assert all(0.5 < g["agreement"] <= 1.0 and g["int8_nodes"] > 0 for g in groups)
    table = (tmp_path / "m.int8.sensitivity.md").read_text()
    assert table.count("\n| ") == len(groups) + 1 and f"| 1 | {groups[0]['group']} |" in table
    assert table in printed
    assert (tmp_path / "m.int8.sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert out.is_file() and budget_props(read_props(out)) == ((), None)  # a plain INT8 graph as before


def test_budget_writes_a_measured_mix(
    trained_tiny: TrainedTiny, trained_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.int8.onnx"
    assert main([*_flags(trained_tiny, trained_onnx, out), "--max-miou-drop", "0.5"]) == 0
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


def test_budget_no_mix_meets_is_one_line(
    trained_tiny: TrainedTiny, trained_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.int8.onnx"
    assert main([*_flags(trained_tiny, trained_onnx, out), "--max-miou-drop", "-50"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: --max-miou-drop -50.0: no INT8 mix meets it")
    assert captured.err.count("\n") == 1 and "pem train --qat" in captured.err
    assert captured.out.count("budget: ") == 2  # the full INT8 graph, then every part out: fails fast
    assert not out.exists()


def test_held_out_frames_are_checked(
    trained_tiny: TrainedTiny, trained_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = _flags(trained_tiny, trained_onnx, tmp_path / "m.int8.onnx")
    no_eval = flags[: flags.index("--eval-data")]
    assert main([*no_eval, "--sensitivity"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --sensitivity and --max-miou-drop measure on held-out frames") and (
        err.count("\n") == 1
    )
    same = [*no_eval, "--eval-frames", str(trained_tiny.data / "leftImg8bit/train"), "--eval-max-frames", "4",
            "--max-miou-drop", "1"]  # fmt: skip
    assert main(same) == 1
    err = capsys.readouterr().err
    assert "shares 4 of 4 frames with --calib-data" in err and err.count("\n") == 1
