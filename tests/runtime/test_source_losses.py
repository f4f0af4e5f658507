"""Sources report what they lose: an unreadable image of a folder is skipped with a warning (``--strict``
stops at it), frames of a damaged video are skipped and the video said to be broken where it broke; both
are counted in the metrics (``lost``) and said at the end, instead of ending early with PASSED."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from tests.runtime.conftest import RunStream, assert_one_error_line, panning_frames


def damaged_video(path: Path, frames: int = 40) -> Path:
    """An H.264 MP4 (index at the front) with a quarter of its data zeroed in the middle: FFmpeg stops
    decoding there, a few frames before the end of the index."""
    import av

    out = av.open(str(path), "w", options={"movflags": "faststart"})
    stream = out.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 128, 64, "yuv420p"
    for frame in panning_frames(frames, (64, 128)):
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    data = bytearray(path.read_bytes())
    start, size = len(data) // 2, len(data) // 4
    data[start : start + size] = bytes(size)
    path.write_bytes(bytes(data))
    return path


def test_unreadable_image_is_skipped_counted_and_said(
    run_stream: RunStream, semantic_onnx: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a.png", "c.png"):
        cv2.imwrite(str(folder / name), np.zeros((32, 32, 3), np.uint8))
    (folder / "b.png").write_bytes(b"not a png")
    metrics, masks = tmp_path / "m.json", tmp_path / "masks"
    run = run_stream("--source", folder, "--onnx", semantic_onnx, "--headless", "--metrics", metrics,
                     "--save-masks", masks)  # fmt: skip
    assert run.code == 0, run.output
    assert "warning:" in run.output and "b.png" in run.output and "skipped" in run.output
    report = json.loads(metrics.read_text())
    assert report["frames"] == 2 and report["lost"] == 1
    assert sorted(p.name for p in masks.iterdir()) == ["a.png", "c.png"]  # stems follow the images kept
    assert run.stdout.strip().splitlines()[-1] == "stream: PASSED"


def test_damaged_video_says_where_it_broke(
    run_stream: RunStream, semantic_onnx: Path, tmp_path: Path
) -> None:
    video = damaged_video(tmp_path / "damaged.mp4")
    metrics = tmp_path / "m.json"
    run = run_stream("--source", video, "--onnx", semantic_onnx, "--headless", "--metrics", metrics)
    assert run.code == 0, run.output
    report = json.loads(metrics.read_text())
    assert report["lost"] > 0 and report["frames"] + report["lost"] == 40, report
    warning = next(line for line in run.output.splitlines() if line.startswith("warning: video damaged.mp4"))
    assert "broke at frame" in warning or "frames " in warning, warning
    strict = run_stream("--source", video, "--onnx", semantic_onnx, "--headless", "--strict")
    assert_one_error_line(strict, "damaged.mp4", "cannot be decoded", "--strict")
