"""Accuracy comparisons across PyTorch / ONNX FP32 / FP16 / INT8 on the trained tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export.compare import main
from tests.conftest import TrainedTiny


@pytest.fixture(scope="module")
def full_report(trained_tiny: TrainedTiny, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare")
    code = main([
        "--checkpoint", str(trained_tiny.run / "best.pt"), "--data", str(trained_tiny.data),
        "--size", "128x256", "--backends", "torch,onnx,fp16,int8",
        "--calib-methods", "entropy,max,percentile", "--calib-batches", "16",
        "--out", str(out), "--save-reference", str(out / "reference"),
    ])  # fmt: skip
    assert code == 0
    return out


def test_every_precision_against_the_trained_model(
    full_report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every precision stays accurate: FP16 label agreement >= 99.5%, INT8 mIoU drop <= 1 point with the best
    method (held-out synthetic val frames, calibration on the train split), ORT FP32 equals PyTorch."""
    report = json.loads((full_report / "report.json").read_text())
    b = report["backends"]
    assert report["truth"] == "ground truth" and report["frames"] == 16
    torch_miou = b["torch"]["mIoU"]
    assert torch_miou > 0.7
    assert b["onnx"]["agreement"] >= 0.999
    assert b["onnx"]["errors"]["mask_logits"]["max_abs"] <= 1e-3 * 30  # logits up to ~30: 1e-3 relative
    assert b["fp16"]["agreement"] >= 0.995
    drops = {m: (torch_miou - b[f"int8-{m}"]["mIoU"]) * 100 for m in ("entropy", "max", "percentile")}
    print("INT8 mIoU drop per calibration method (points):", drops)
    assert min(drops.values()) <= 1.0
    assert set(b["int8-max"]["errors"]) == {"class_logits", "mask_logits", "scores"}
    assert (full_report / "report.png").stat().st_size > 20_000


def test_a_perturbed_graph_fails_the_tolerance(
    full_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = next(full_report.glob("*.debug.onnx"))
    model = onnx.load(str(good))
    init = next(i for i in model.graph.initializer if i.name.endswith("features.0.conv.weight"))
    arr = -numpy_helper.to_array(init)  # one weight tensor perturbed: the first conv's kernels negated
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    reference = full_report / "reference"
    ok = main(
        [
            "--load-reference",
            str(reference),
            "--backends",
            "onnx",
            "--onnx",
            str(good),
            "--out",
            str(tmp_path / "ok"),
            "--min-agreement",
            "0.999",
            "--max-miou-drop",
            "0.5",
        ]
    )
    assert ok == 0
    bad = main(
        [
            "--load-reference",
            str(reference),
            "--backends",
            "onnx",
            "--onnx",
            str(broken),
            "--out",
            str(tmp_path / "bad"),
            "--min-agreement",
            "0.999",
            "--max-miou-drop",
            "0.5",
        ]
    )
    assert bad == 1
    err = capsys.readouterr().err
    assert "tolerance missed: onnx: agreement" in err and "mIoU drop" in err
    assert json.loads((tmp_path / "bad" / "report.json").read_text())["failures"]


def test_polygraphy_cli_runs_with_our_data_loader(full_report: Path) -> None:
    """`polygraphy run MODEL --onnxrt --data-loader-script calibration/polygraphy_loader.py --validate`."""
    model = next(full_report.glob("*.debug.onnx"))
    polygraphy = Path(sys.executable).parent / "polygraphy"
    loader = "calibration/polygraphy_loader.py"
    run = subprocess.run(
        [str(polygraphy), "run", str(model), "--onnxrt", "--data-loader-script", loader, "--validate"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PEM_FRAMES": "skimage", "PEM_FRAMES_LIMIT": "3"},
    )  # fmt: skip
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert "Iteration: 2" in log and "PASSED" in log and "dtype=uint8, shape=(1, 128, 256, 3)" in log


def test_polygraphy_inspect_model(full_report: Path) -> None:
    """The README's `polygraphy inspect model MODEL --show layers` recipe."""
    model = next(full_report.glob("*.debug.onnx"))
    run = subprocess.run(
        [str(Path(sys.executable).parent / "polygraphy"), "inspect", "model", str(model), "--show", "layers"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "DeformConv" in run.stdout and "image" in run.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backends", "torch,tensorflow"], "unknown backend 'tensorflow'"),
        (
            ["--backends", "torch,engine", "--engine", "missing.engine"],
            "--engine missing.engine does not exist",
        ),
        (["--size", "64x128"], "does not match"),
    ],
)
def test_bad_input_is_one_line(
    full_report: Path,
    trained_tiny: TrainedTiny,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    onnx_path = next(full_report.glob("*.debug.onnx"))
    code = main(
        [
            "--checkpoint",
            str(trained_tiny.run / "best.pt"),
            "--onnx",
            str(onnx_path),
            "--out",
            str(tmp_path),
            *args,
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_saved_reference_replays(full_report: Path) -> None:
    from export.compare import load_reference

    frames, ref, classes = load_reference(full_report / "reference")
    assert frames.images.shape == (16, 128, 256, 3) and frames.labels is not None
    assert ref.name == "torch (saved)" and len(ref.outputs) == 16 and len(classes) == 19
    assert np.array_equal(ref.outputs[0]["labels"].shape, (1, 128, 256))
