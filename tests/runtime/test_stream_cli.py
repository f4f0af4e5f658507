"""`python runtime/stream.py` end to end, as a user runs it: outputs, clean ends, one-line errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from pem_rt.synthetic import SyntheticScene

from .conftest import REPO, RunStream, assert_one_error_line, stream_env


def onnx_labels(model: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return [session.run(["labels"], {"image": f[None]})[0][0] for f in frames]


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_synthetic_headless_writes_video_metrics_and_masks(
    run_stream: RunStream, semantic_onnx: Path, tmp_path: Path
) -> None:
    """`pem stream` end to end: N frames, a playable MP4, a metrics JSON, masks equal to ONNX Runtime's."""
    n = 12
    video, metrics, masks = tmp_path / "out.mp4", tmp_path / "metrics.json", tmp_path / "masks"
    run = run_stream(
        "--source", "synthetic:64x128", "--onnx", semantic_onnx, "--headless", "--frames", n,
        "--record", video, "--metrics", metrics, "--save-masks", masks,
    )  # fmt: skip
    assert run.code == 0, run.output
    assert run.stdout.strip().splitlines()[-1] == "stream: PASSED"
    assert "Traceback" not in run.output and run.stderr == "", run.stderr

    frames = read_video(video)
    assert len(frames) == n and frames[0].shape == (64, 128, 3)

    m = json.loads(metrics.read_text())
    assert m["frames"] == n and m["captured"] == n and m["dropped"] == 0 and m["fps"] > 0
    assert m["backend"].startswith("onnxruntime") and m["input_size"] == [64, 128]
    for stage in ("capture", "preprocess", "infer", "postprocess", "output", "end_to_end"):
        s = m["latency_ms"][stage]
        assert s["count"] == n and 0 <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"], (stage, s)

    scene = SyntheticScene(64, 128)
    want = onnx_labels(semantic_onnx, [scene.frame(i) for i in range(n)])
    for i in range(n):
        got = cv2.imread(str(masks / f"synthetic_{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint8 and got.shape == (64, 128)
        np.testing.assert_array_equal(got, want[i])


def test_video_file_ends_cleanly_after_every_frame(
    run_stream: RunStream, semantic_onnx: Path, clip: Path, tmp_path: Path
) -> None:
    metrics = tmp_path / "m.json"
    run = run_stream(
        "--source",
        clip,
        "--onnx",
        semantic_onnx,
        "--headless",
        "--metrics",
        metrics,
        "--save-masks",
        tmp_path / "masks",
    )
    assert run.code == 0, run.output
    m = json.loads(metrics.read_text())
    assert m["frames"] == 30 and m["dropped"] == 0 and m["stopped_by"] == "end of source"
    names = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert names[0] == "clip_000000.png" and len(names) == 30
    assert cv2.imread(str(tmp_path / "masks" / names[0]), cv2.IMREAD_UNCHANGED).shape == (
        96,
        160,
    )  # frame size


def test_image_folder_masks_are_named_by_image_and_sized_like_it(
    run_stream: RunStream, semantic_onnx: Path, photo_folder: Path, tmp_path: Path
) -> None:
    masks = tmp_path / "preds"
    run = run_stream("--source", photo_folder, "--onnx", semantic_onnx, "--headless", "--save-masks", masks)
    assert run.code == 0, run.output
    images = sorted(photo_folder.iterdir())
    assert sorted(p.name for p in masks.iterdir()) == [p.name for p in images]
    for img in images:
        label = cv2.imread(str(masks / img.name), cv2.IMREAD_UNCHANGED)
        assert label.shape == (120, 180) and label.max() < 19


def test_panoptic_masks_in_the_evaluator_format(
    run_stream: RunStream, panoptic_onnx: Path, tmp_path: Path
) -> None:
    masks = tmp_path / "pan"
    run = run_stream(
        "--source",
        "synthetic:80x160",
        "--onnx",
        panoptic_onnx,
        "--headless",
        "--frames",
        3,
        "--save-masks",
        masks,
        "--record",
        tmp_path / "p.mp4",
    )
    assert run.code == 0, run.output
    for stem in ("synthetic_000000", "synthetic_000002"):
        labels = cv2.imread(str(masks / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        pan = cv2.imread(str(masks / f"{stem}_panoptic.png"), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.int64)
        ids = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
        info = json.loads((masks / f"{stem}_panoptic.json").read_text())["segments_info"]
        assert labels.shape == ids.shape == (80, 160)
        category = {s["id"]: s["category_id"] for s in info}
        assert set(np.unique(ids)) <= {0, *category}
        for seg_id, cat in category.items():  # the label map is the segments' classes, void elsewhere
            assert (labels[ids == seg_id] == cat).all()
        assert (labels[ids == 0] == 255).all()


def test_letterbox_maps_back_to_the_frame_size(
    run_stream: RunStream, semantic_onnx: Path, tmp_path: Path
) -> None:
    run = run_stream(
        "--source",
        "synthetic:200x200",
        "--onnx",
        semantic_onnx,
        "--headless",
        "--frames",
        2,
        "--save-masks",
        tmp_path,
        "--record",
        tmp_path / "o.avi",
    )
    assert run.code == 0, run.output
    assert cv2.imread(str(tmp_path / "synthetic_000001.png"), cv2.IMREAD_UNCHANGED).shape == (200, 200)
    assert read_video(tmp_path / "o.avi")[0].shape == (200, 200, 3)


# one clear line, never a traceback -------------------------------------------------------------------
def test_missing_camera(run_stream: RunStream, semantic_onnx: Path) -> None:
    run = run_stream("--camera", "57", "--onnx", semantic_onnx, "--headless")
    assert_one_error_line(run, "--camera 57", "/dev/video57")


def test_unreadable_video_file(run_stream: RunStream, semantic_onnx: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 10)
    assert_one_error_line(
        run_stream("--source", bad, "--onnx", semantic_onnx, "--headless"), "cannot read it"
    )


def test_missing_source_and_unreadable_image(
    run_stream: RunStream, semantic_onnx: Path, tmp_path: Path
) -> None:
    assert_one_error_line(
        run_stream("--source", tmp_path / "nope.mp4", "--onnx", semantic_onnx, "--headless"), "no such file"
    )
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((32, 32, 3), np.uint8))
    (folder / "b.png").write_bytes(b"not a png")
    run = run_stream("--source", folder, "--onnx", semantic_onnx, "--headless", "--strict")
    assert_one_error_line(run, "b.png", "not a readable image", "--strict")


def test_wrong_input_size(run_stream: RunStream, semantic_onnx: Path) -> None:
    run = run_stream(
        "--source", "synthetic:96x160", "--resize", "none", "--onnx", semantic_onnx, "--headless"
    )
    assert_one_error_line(run, "96x160", "64x128", "--resize")


def test_missing_model_and_defaults_chain(run_stream: RunStream, semantic_onnx: Path, tmp_path: Path) -> None:
    env = stream_env()
    env["PEM_RUNS"] = str(tmp_path / "runs")
    assert_one_error_line(run_stream("--headless", "--frames", "1", env=env), "pem export")
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "m_semantic_64x128.onnx").write_bytes(semantic_onnx.read_bytes())
    run = run_stream("--source", "synthetic:64x128", "--headless", "--frames", "2", env=env)
    assert run.code == 0, run.output
    assert "using ONNX Runtime" in run.stdout and "m_semantic_64x128.onnx" in run.stdout


def test_gstreamer_without_gstreamer_is_one_line(run_stream: RunStream, semantic_onnx: Path) -> None:
    from runtime.sources import has_gstreamer

    if has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    run = run_stream(
        "--source", "videotestsrc ! videoconvert ! appsink", "--onnx", semantic_onnx, "--headless"
    )
    assert_one_error_line(run, "no GStreamer")


def test_torch_is_never_imported(semantic_onnx: Path, tmp_path: Path) -> None:
    """The stream (every runtime module, a whole run) works without torch ever being imported."""
    code = (
        "import sys, pkgutil, importlib, runtime, runtime.backends\n"
        "for m in pkgutil.walk_packages(runtime.__path__, 'runtime.'):\n"
        "    importlib.import_module(m.name)\n"
        "from runtime.stream import main\n"
        f"rc = main(['--source', 'synthetic:64x128', '--onnx', r'{semantic_onnx}', '--headless',"
        f" '--frames', '2', '--record', r'{tmp_path / 'x.mp4'}'])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('TORCH' if bad else 'NO-TORCH', bad[:3])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=stream_env(), timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "NO-TORCH" in done.stdout, done.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_finalises_the_recording(
    semantic_onnx: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    video, metrics = tmp_path / "live.mp4", tmp_path / "m.json"
    cmd = [
        sys.executable,
        str(REPO / "runtime" / "stream.py"),
        "--source",
        "synthetic:64x128",
        "--realtime",
        "--onnx",
        str(semantic_onnx),
        "--headless",
        "--record",
        str(video),
        "--metrics",
        str(metrics),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=stream_env())
    try:
        deadline = time.monotonic() + 60
        partial = tmp_path / ".live.partial.mp4"
        while not partial.exists() and time.monotonic() < deadline:  # recording has started
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err and out.strip().splitlines()[-1] == "stream: PASSED", out + err
    m = json.loads(metrics.read_text())
    assert m["stopped_by"] in ("Ctrl-C", "SIGTERM") and m["live"] is True
    frames = read_video(video)
    assert len(frames) == m["frames"] > 0 and frames[0].shape == (64, 128, 3)


def test_ctrl_c_without_outputs_ends_cleanly(semantic_onnx: Path, tmp_path: Path) -> None:
    """Headless with only metrics (the output bookkeeping runs in the inference thread): Ctrl-C still ends
    the run with PASSED and the metrics written."""
    metrics = tmp_path / "m.json"
    cmd = [sys.executable, str(REPO / "runtime" / "stream.py"), "--source", "synthetic:64x128", "--realtime",
           "--onnx", str(semantic_onnx), "--headless", "--metrics", str(metrics)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=stream_env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "synthetic 64x128 -> PEM ...": the run has started
        assert "->" in line, line
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out.strip().splitlines()[-1] == "stream: PASSED", line + out + err
    m = json.loads(metrics.read_text())
    assert m["stopped_by"] == "Ctrl-C" and m["frames"] >= 1, m


@pytest.mark.parametrize("task", ["semantic", "panoptic"])
def test_saved_masks_are_read_by_the_evaluator(
    run_stream: RunStream, semantic_onnx: Path, panoptic_onnx: Path, tmp_path: Path, task: str
) -> None:
    """`pem stream --source VAL_IMAGES --save-masks DIR`; `pem evaluate --predictions DIR` scores them."""
    from training.data.synthetic import write_dataset

    data = tmp_path / "cityscapes"
    write_dataset(data, 0, 3, (64, 128))
    preds = tmp_path / "preds"
    model = semantic_onnx if task == "semantic" else panoptic_onnx
    run = run_stream("--source", data / "leftImg8bit" / "val" / "synth", "--onnx", model, "--headless",
                     "--save-masks", preds)  # fmt: skip
    assert run.code == 0, run.output
    report = tmp_path / "eval.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "training" / "evaluate.py"), "--predictions", str(preds),
         "--data", str(data), "--dataset", "cityscapes", "--task", task, "--json", str(report)],
        capture_output=True, text=True, env=stream_env(), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("evaluate: PASSED"), (
        done.stdout + done.stderr
    )
    result = json.loads(report.read_text())
    assert result["summary"]["images"] == 3, result
    if task == "panoptic":
        assert "PQ" in json.dumps(result), result
