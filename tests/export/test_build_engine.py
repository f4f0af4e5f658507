"""Engines built for real with TensorRT-RTX ahead of time (no GPU): FP32, FP16 and INT8 with both plugins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest

from export.build_engine import main
from export.surgery import to_tensorrt_graph
from pem_rt.engine_meta import read_sidecar

Exported = Callable[..., tuple[object, Path]]


def _copy(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / path.name
    dst.write_bytes(path.read_bytes())
    return dst


def parse_in_tensorrt_rtx(path: Path, plugin_library: Path) -> tuple[Any, Any, int]:
    """The TensorRT graph of ``path`` (after surgery) parsed by TensorRT-RTX with our plugins:
    (network, parser, prototype-selection plugins); the parser owns the network's weights."""
    import tensorrt_rtx as trt

    import plugins

    model, _, sel = to_tensorrt_graph(onnx.load(str(path)), str(path))
    plugins.load(trt, plugin_library)
    logger = trt.Logger(trt.Logger.WARNING)
    network = trt.Builder(logger).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model.SerializeToString()), [
        str(parser.get_error(i)) for i in range(parser.num_errors)
    ]
    return network, parser, sel


@pytest.mark.parametrize("preset", ["cityscapes-r50", "cityscapes-tiny"])
def test_trt_graph_parses_in_tensorrt_rtx(exported: Exported, plugin_library: Path, preset: str) -> None:
    import tensorrt_rtx as trt

    _, path = exported(preset)
    network, _parser, sel = parse_in_tensorrt_rtx(path, plugin_library)
    kinds = [network.get_layer(i).type for i in range(network.num_layers)]
    assert kinds.count(trt.LayerType.PLUGIN_V3) == 3 + sel


def _build(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_fp32_fp16_int8_engines_and_cache_reuse(
    exported: Exported, plugin_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = exported("cityscapes-tiny", debug=False)
    onnx_path = _copy(path, tmp_path)
    common = ["--onnx", str(onnx_path), "--target", "sm86", "--plugins", str(plugin_library)]
    for precision in ("--fp32", "--fp16", "--int8"):
        extra = ["--calib-data", "skimage", "--calib-batches", "4"] if precision == "--int8" else []
        code, out, err = _build([precision, *common, *extra], capsys)
        assert code == 0, err
        engine = next(tmp_path.glob(f"*.{precision[2:]}.sm86.rtx*.engine"))
        sidecar = read_sidecar(engine)
        assert sidecar.precision == precision[2:] and sidecar.flavour == "tensorrt_rtx"
        assert sidecar.targets == ("sm86",) and sidecar.model.name == "cityscapes-tiny"
        assert [t.name for t in sidecar.inputs] == ["image"] and sidecar.inputs[0].dtype == "uint8"
        assert [(t.name, t.dtype, t.shape) for t in sidecar.outputs] == [("labels", "uint8", (1, 64, 128))]
        types = [layer["type"] for layer in sidecar.layers]
        assert types.count("PLUGIN_V3") == 6
        assert "3 pem_deform_conv, 3 pem_prototype_selection" in out
        assert engine.stat().st_size > 100_000
        if precision == "--int8":
            assert any("int8" in layer["dtypes"] for layer in sidecar.layers)
            assert "calibrating" in out
            # quiet: TensorRT's 49 "Converting conv weight scales" (and the like) come as one line each
            lines = (out + err).replace("\r", "\n").splitlines()
            assert len([line for line in lines if line.strip() and "batch/s" not in line]) <= 15, out + err
            assert "Converting conv weight scales to fp32. [" in out
    code, out, err = _build(["--int8", *common, "--calib-data", "skimage", "--calib-batches", "4"], capsys)
    assert code == 0, err
    assert "skipping calibration" in out
    json.loads(Path(f"{next(tmp_path.glob('*.int8.*.engine'))}.json").read_text())


def test_inspect_prints_sidecar_and_layers(
    exported: Exported, plugin_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = exported("cityscapes-tiny", debug=False)
    onnx_path = _copy(path, tmp_path)
    engine = tmp_path / "m.engine"
    assert (
        main(
            [
                "--fp32",
                "--onnx",
                str(onnx_path),
                "--target",
                "sm89",
                "--plugins",
                str(plugin_library),
                "--out",
                str(engine),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["inspect", str(engine)]) == 0
    out = capsys.readouterr().out
    assert '"precision": "fp32"' in out and "PLUGIN_V3" in out and "pem_prototype_selection_2" in out


@pytest.mark.parametrize(
    "case", ["missing_onnx", "empty_calib", "bad_video", "unknown_target", "bad_plugins"]
)
def test_bad_input_is_one_line(
    exported: Exported, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = exported("cityscapes-tiny", debug=False)
    onnx_path = _copy(path, tmp_path)
    args = ["--onnx", str(onnx_path), "--target", "sm86"]
    if case == "missing_onnx":
        args = ["--onnx", str(tmp_path / "nope.onnx"), "--fp16"]
        want = "does not exist"
    elif case == "empty_calib":
        (tmp_path / "empty").mkdir()
        args += ["--int8", "--calib-data", str(tmp_path / "empty")]
        want = "has no images"
    elif case == "bad_video":
        (tmp_path / "clip.mp4").write_bytes(b"\x00" * 4096)
        args += ["--int8", "--calib-data", str(tmp_path / "clip.mp4")]
        want = "not a readable video"
    elif case == "unknown_target":
        args = ["--onnx", str(onnx_path), "--target", "sm90", "--fp32"]
        want = "unknown --target sm90"
    else:  # in a fresh process: this one may have registered the good library already
        bad = tmp_path / "libbroken.so"
        bad.write_bytes(b"\x7fELF garbage")
        run = subprocess.run(
            [sys.executable, "export/build_engine.py", *args, "--fp32", "--plugins", str(bad)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 1 and "Traceback" not in run.stderr
        errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "could not load plugin library" in errors[0]
        return
    code, _, err = _build(args, capsys)
    assert code == 1
    assert want in err and err.count("\n") == 1 and err.startswith("error: ")


def test_interrupted_build_keeps_the_previous_engine(
    exported: Exported, plugin_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = exported("cityscapes-tiny", debug=False)
    onnx_path = _copy(path, tmp_path)
    engine = tmp_path / "m.engine"
    args = [
        "--fp32",
        "--onnx",
        str(onnx_path),
        "--target",
        "sm86",
        "--plugins",
        str(plugin_library),
        "--out",
        str(engine),
    ]
    assert main(args) == 0
    before = engine.read_bytes()
    # killed once TensorRT is building: right after the TensorRT graph is written (a deterministic hook)
    env = {**os.environ, "PEM_KILL_AT": "after-rename:*.trt.onnx"}
    proc = subprocess.run([sys.executable, "export/build_engine.py", *args], env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert engine.read_bytes() == before
    read_sidecar(engine)  # still valid


def test_calibration_video_source(tmp_path: Path) -> None:
    """A real MP4 works as --calib-data (frames are read evenly across it)."""
    from calibration.frames import read_frames

    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (128, 64))
    for i in range(20):
        writer.write(np.full((64, 128, 3), i * 10, np.uint8))
    writer.release()
    frames = read_frames(video, (64, 128), 5)
    assert len(frames) == 5 and frames[0].mean() < frames[-1].mean()


@pytest.mark.slow
def test_int8_build_prints_at_most_15_lines(exported: Exported, plugin_library: Path, tmp_path: Path) -> None:
    """What a user sees (a separate process, every file descriptor): at most 15 lines without --verbose;
    --verbose passes TensorRT's repeated messages through one by one."""
    _, path = exported("cityscapes-tiny", debug=False)
    onnx_path = _copy(path, tmp_path)
    cmd = [sys.executable, "-m", "pem_rt.cli", "build-engine", "--int8", "--onnx", str(onnx_path), "--target",
           "sm86,sm89", "--plugins", str(plugin_library), "--calib-data", "skimage"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    quiet = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    lines = (quiet.stdout + quiet.stderr).replace("\r", "\n").splitlines()
    shown = [line for line in lines if line.strip() and "batch/s" not in line]
    assert len(shown) <= 15, "\n".join(shown)
    loud = subprocess.run([*cmd, "--verbose"], capture_output=True, text=True, env=env, timeout=900)
    assert loud.returncode == 0 and loud.stdout.count("Converting conv weight scales to fp32") >= 40
