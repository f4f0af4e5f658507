"""Calibration end to end on a tiny exported model: frames, cache reuse, Q/DQ graph in ORT, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from calibration.cache import CalibrationKey, read_cache, write_cache
from calibration.calibrate import CalibrationConfig
from calibration.frames import read_frames
from export.calibrate import calibrate_for_tensorrt, main
from export.surgery import prototype_selection_matmuls
from pem_rt.errors import PemError


@pytest.fixture(scope="module")
def reference(semantic_onnx: Path) -> Path:
    """cityscapes-tiny, semantic, 64x128, seeded random weights (tests/conftest.py)."""
    return semantic_onnx


def test_read_frames_from_folder_video_and_skimage(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (48, 80, 3), dtype=np.uint8))
    assert read_frames(folder, (64, 128), 3).shape == (3, 64, 128, 3)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (80, 48))
    for _ in range(12):
        writer.write(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8))
    writer.release()
    got = read_frames(video, (64, 128), 4)
    assert got.shape == (4, 64, 128, 3) and got.dtype == np.uint8
    photos = read_frames("skimage", (64, 128), 6)
    assert photos.shape == (6, 64, 128, 3) and photos.std() > 20


@pytest.mark.parametrize("source", ["empty", "missing", "garbage_video"])
def test_bad_calibration_data_is_one_line(tmp_path: Path, source: str) -> None:
    path = tmp_path / source
    if source == "empty":
        path.mkdir()
    elif source == "garbage_video":
        path = tmp_path / "broken.mp4"
        path.write_bytes(b"not a video" * 100)
    with pytest.raises(PemError) as e:
        read_frames(path, (64, 128), 4)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_cache_key_mismatch_is_ignored_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = CalibrationKey("abc", (64, 128), "entropy", None, 8, "f00")
    path = write_cache(tmp_path / "m.calib", key, {"t1": 12.7, "t2": 0.5})
    scales = read_cache(path, key)
    assert (
        scales is not None and scales["t1"] == pytest.approx(0.1) and scales["t2"] == pytest.approx(0.5 / 127)
    )
    other = CalibrationKey("abc", (64, 128), "max", None, 8, "f00")
    assert read_cache(path, other) is None
    assert "method differ" in capsys.readouterr().out


def test_calibrate_writes_qdq_graph_and_reuses_cache(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, cache = tmp_path / "tiny.int8.onnx", tmp_path / "tiny.calib"
    config = CalibrationConfig("skimage", "percentile", batches=4, cache=cache)
    first = calibrate_for_tensorrt(reference, out, config)
    assert not first.reused_cache and cache.is_file() and first.report.quantized_nodes > 20
    selection = prototype_selection_matmuls(onnx.load(str(reference)))  # what surgery turns into a plugin
    assert selection and set(selection) <= set(first.report.excluded)
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    dq_out = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    for n in model.graph.node:  # the ops our FP16/FP32 plugins replace are not INT8 ops: float weights
        if n.op_type == "DeformConv":
            assert n.input[1] not in dq_out, n.name
    assert {p.key for p in model.metadata_props} >= {"pem.name", "pem.task"}
    frames = read_frames("skimage", (64, 128), 2)
    want = ort.InferenceSession(str(reference)).run(None, {"image": frames[:1]})[0]
    got = ort.InferenceSession(str(out)).run(None, {"image": frames[:1]})[0]
    assert got.shape == want.shape and (got == want).mean() > 0.5
    capsys.readouterr()
    second = calibrate_for_tensorrt(reference, out, config)
    assert second.reused_cache
    assert "skipping calibration" in capsys.readouterr().out


def test_cli_errors(reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--onnx", str(tmp_path / "nope.onnx"), "--calib-data", "skimage"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["--onnx", str(reference), "--calib-data", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --calib-data") and err.count("\n") == 1
