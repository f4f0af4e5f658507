"""Several sources batched through one model (runtime/multistream.py; `pem stream --source A --source B`):
per-source outputs equal the single-stream ones, a source that ends, stalls or fails never holds back the
others, static-batch models, the tiled preview, --sources files."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from pem_rt.errors import PemError
from pem_rt.synthetic import SyntheticScene
from runtime.multistream import MultiStream, record_targets
from runtime.segmenter import Segmenter
from runtime.sources import Source, SyntheticSource, open_source
from runtime.stream import read_sources_file

from .conftest import REPO, Run, RunStream, assert_one_error_line, stream_env
from .rtsp_server import RtspServer
from .test_stream_cli import read_video


def single_stream_labels(model: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    """What the single-stream API gives for each frame (one frame per inference call)."""
    seg = Segmenter(model, backend="onnxruntime", provider="cpu", log=lambda m: None)
    return [seg(f).labels for f in frames]


def test_four_sources_batched_equal_single_stream(
    run_stream: RunStream, dynamic_semantic_onnx: Path, clip: Path, tmp_path: Path
) -> None:
    """Batching keeps results: 4 sources (3 synthetic streets, a 30-frame video) through ONNX Runtime
    in batches of 4; each source's label maps are bit-equal to the single-stream ones for the same frames,
    and the video ending leaves the others running to the end."""
    n = 40
    masks, metrics = tmp_path / "masks", tmp_path / "m.json"
    run = run_stream(
        "--source", "synthetic:64x128", "--source", clip, "--source", "synthetic:64x128@5",
        "--source", "synthetic:96x160", "--onnx", dynamic_semantic_onnx, "--headless", "--frames", n,
        "--save-masks", masks, "--metrics", metrics, "--record", tmp_path / "out_{i}.mp4",
    )  # fmt: skip
    assert run.code == 0, run.output
    assert run.stdout.strip().splitlines()[-1] == "stream: PASSED" and run.stderr == "", run.output
    assert "source 1 (video clip.mp4): end of source after 30 frames; 3 sources go on" in run.stdout

    m = json.loads(metrics.read_text())
    assert [s["frames"] for s in m["sources"]] == [n, 30, n, n]
    assert [s["stopped_by"] for s in m["sources"]] == [
        "40 frames done",
        "end of source",
        *["40 frames done"] * 2,
    ]
    assert max(int(k) for k in m["batch_sizes"]) == 4 and m["batch_sizes"].get("4", 0) >= 20, m["batch_sizes"]
    assert m["frames"] == 3 * n + 30 and m["mean_batch"] > 3

    streams = [
        ("synthetic", SyntheticScene(64, 128, seed=0).frame, n),
        ("clip", None, 30),
        ("synthetic", SyntheticScene(64, 128, seed=5).frame, n),
        ("synthetic", SyntheticScene(96, 160, seed=3).frame, n),  # unseeded: the source's position
    ]
    for k, (stem, make, count) in enumerate(streams):
        frames = read_video(clip) if make is None else [make(i) for i in range(count)]
        want = single_stream_labels(dynamic_semantic_onnx, frames)
        for i in range(count):
            got = cv2.imread(str(masks / f"source{k}" / f"{stem}_{i:06d}.png"), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(got, want[i], err_msg=f"source {k} frame {i}")
        video = read_video(tmp_path / f"out_{k}.mp4")
        assert len(video) == count and video[0].shape == frames[0].shape


class StallingSource(Source):
    """A camera that delivers ``frames`` frames at 30 FPS and then hangs inside read() (ignoring the stop
    event, as a driver blocked in a system call does) until ``release`` is set (or, as a safety net, ``stall``
    seconds pass); then it ends. ``released`` says which of the two ended the hang, ``returned`` whether
    the hanging read has returned."""

    live = True

    def __init__(self, frames: int, stall: float) -> None:
        self.scene = SyntheticScene(64, 128, seed=9)
        self.frames, self.stall = frames, stall
        self.release = threading.Event()
        self.released = self.returned = False
        self.description = "stalling camera"
        self.i = 0

    def read(self, stop: threading.Event) -> np.ndarray | None:
        if self.i >= self.frames:
            self.released = self.release.wait(self.stall)
            self.returned = True
            return None
        self.i += 1
        time.sleep(1 / 30)
        return self.scene.frame(self.i - 1)


def test_a_stalled_source_does_not_hold_back_the_others(dynamic_semantic_onnx: Path) -> None:
    seg = Segmenter(dynamic_semantic_onnx, log=lambda m: None)
    stalling = StallingSource(frames=3, stall=60)
    sources = [SyntheticSource((64, 128), seed=k) for k in range(3)] + [stalling]
    lines: list[str] = []

    def log(msg: str) -> None:  # the camera's hang ends only once the other three have all their frames
        lines.append(msg)
        if sum("frames done" in line for line in lines) == 3:
            stalling.release.set()

    run = MultiStream(seg, sources, max_frames=30, log=log)  # type: ignore[arg-type]
    metrics = run.run()
    camera = metrics.sources[3]  # live: when the batcher is slower than 30 FPS, an older frame is dropped
    assert [s.frames for s in metrics.sources[:3]] == [30, 30, 30] and camera.frames + camera.dropped == 3
    assert stalling.released, lines  # released by the others finishing, not by the safety timeout
    order = [next(i for i, m in enumerate(lines) if m.startswith(f"source {k} (")) for k in range(4)]
    assert max(order[:3]) < order[3], lines  # the others finished while the camera still hung
    assert f"source 3 (stalling camera): end of source after {camera.frames} frames" in lines[-1]
    assert metrics.batch_sizes[3] >= 20  # the stalled source was not waited for
    seg.close()


def test_stop_returns_while_a_read_is_still_blocked(dynamic_semantic_onnx: Path) -> None:
    seg = Segmenter(dynamic_semantic_onnx, log=lambda m: None)
    stalling = StallingSource(frames=2, stall=60)
    lines: list[str] = []
    run = MultiStream(
        seg, [SyntheticSource((64, 128)), stalling], max_frames=10, join_timeout=0.5, log=lines.append
    )  # type: ignore[arg-type]

    def stop_once_the_camera_hangs() -> None:
        while not run.lanes[0].ended or run.lanes[1].metrics.frames < 2:
            time.sleep(0.02)
        run.stop("test")

    threading.Thread(target=stop_once_the_camera_hangs, daemon=True).start()
    metrics = run.run()
    assert not stalling.returned  # run() came back while the camera's read still hung
    assert [s.frames for s in metrics.sources] == [10, 2] and run.state.reason == "test"
    assert any("stalling camera) is still blocked in a read" in msg for msg in lines), lines
    stalling.release.set()
    seg.close()


def test_a_failed_stream_is_reported_and_the_others_go_on(
    clip: Path, ffmpeg: str, dynamic_semantic_onnx: Path, tmp_path: Path
) -> None:
    """A real RTSP camera (tests/runtime/rtsp_server.py) dies for good beside two paced synthetic cameras:
    it is reported when it gives up, the others deliver all their frames, and the run ends with one error
    line."""
    metrics = tmp_path / "m.json"
    server = RtspServer(clip, ffmpeg, workdir=tmp_path)
    server.start()
    cmd = [sys.executable, str(REPO / "runtime" / "stream.py"), "--source", "synthetic:64x128", "--source",
           server.url, "--source", "synthetic:64x128", "--realtime", "--onnx", str(dynamic_semantic_onnx),
           "--headless", "--frames", "120", "--reconnect-timeout", "1",
           "--metrics", str(metrics)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=stream_env())
    try:
        deadline = time.monotonic() + 45
        while server.frames_sent < 8:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the RTSP source received no frames"
            time.sleep(0.05)
        server.stop()  # the camera dies and never comes back
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        server.stop()
    line = assert_one_error_line(Run(proc.returncode, out, err), "1 of 3 sources failed", server.url)
    assert "did not come back within 1 s" in line
    assert f"source 1 ({server.url}): stopped after" in out and "2 sources go on" in out, out
    m = json.loads(metrics.read_text())
    assert [s["frames"] for s in m["sources"]][::2] == [120, 120]
    assert m["sources"][1]["stopped_by"] == "error" and "did not come back" in m["sources"][1]["error"]


def test_static_batch_model_runs_several_sources_and_the_tiled_preview(
    run_stream: RunStream, semantic_onnx: Path, tmp_path: Path
) -> None:
    """A static batch-1 export with three sources: one note says how to batch them, every frame is still
    processed (one call each), and --record out.mp4 records the tiled preview (2x2 grid)."""
    run = run_stream(
        "--source", "synthetic:64x128", "--source", "synthetic:64x128", "--source", "synthetic:48x64",
        "--onnx", semantic_onnx, "--headless", "--frames", 4, "--record", tmp_path / "tiles.mp4",
        "--save-masks", tmp_path / "masks",
    )  # fmt: skip
    assert run.code == 0, run.output
    notes = [line for line in run.stdout.splitlines() if "static batch of 1" in line]
    assert len(notes) == 1 and "pem export --dynamic-batch" in notes[0], run.stdout
    video = read_video(tmp_path / "tiles.mp4")
    assert len(video) == 4 and video[0].shape == (482, 962, 3)  # 2x2 tiles of 240x480, 2-pixel gaps
    for k, size in enumerate([(64, 128), (64, 128), (48, 64)]):
        pngs = sorted((tmp_path / "masks" / f"source{k}").iterdir())
        assert len(pngs) == 4 and cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED).shape == size


def _static_batch_copy(dynamic: Path, batch: int, out: Path) -> Path:
    """The dynamic-batch graph with its batch dimension fixed (and its metadata saying so)."""
    proto = onnx.load(str(dynamic))
    for value in [*proto.graph.input, *proto.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_value = batch
    for prop in proto.metadata_props:
        if prop.key == "pem.batch":
            prop.value = str(batch)
    onnx.save(proto, str(out))
    return out


def test_static_batch_is_padded(dynamic_semantic_onnx: Path, tmp_path: Path) -> None:
    model = _static_batch_copy(dynamic_semantic_onnx, 2, tmp_path / "b2.onnx")
    seg = Segmenter(model, log=lambda m: None)
    assert seg.meta.batch == 2 and seg.max_batch == 2
    frames = [SyntheticScene(64, 128, seed=k).frame(3) for k in range(3)]
    want = single_stream_labels(dynamic_semantic_onnx, frames)
    results = seg.run_batch([seg.prepare(f) for f in frames])  # calls of 2: [0, 1], [2 + padding]
    for got, expected in zip(results, want, strict=True):
        np.testing.assert_array_equal(got.labels, expected)
    np.testing.assert_array_equal(seg(frames[2]).labels, want[2])  # one frame: padded to 2 as well
    limited = seg.run_batch([seg.prepare(f) for f in frames], max_batch=1)
    np.testing.assert_array_equal(limited[1].labels, want[1])


def test_sources_file_and_seeds(tmp_path: Path) -> None:
    listing = tmp_path / "cams.txt"
    listing.write_text("# the yard\nsynthetic:64x128@3\n\n  camera:2  # gate\nrtsp://cam/live\n")
    assert read_sources_file(listing) == [
        ("source", "synthetic:64x128@3"),
        ("camera", "2"),
        ("source", "rtsp://cam/live"),
    ]
    (tmp_path / "bad.txt").write_text("camera:x\n")
    with pytest.raises(PemError, match=r"line 1 'camera:x': use camera:N"):
        read_sources_file(tmp_path / "bad.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(PemError, match="no sources in it"):
        read_sources_file(tmp_path / "empty.txt")
    with pytest.raises(PemError, match="cannot read it"):
        read_sources_file(tmp_path / "missing.txt")
    seeded = open_source("synthetic:64x128@3", seed=1)
    assert isinstance(seeded, SyntheticSource) and seeded.seed == 3 and seeded.description.endswith("seed 3")
    assert isinstance(open_source("synthetic", seed=2), SyntheticSource)
    with pytest.raises(PemError, match="the seed must be an integer"):
        open_source("synthetic@x")
    assert record_targets(tmp_path / "o_{i}.avi", 2) == ([tmp_path / "o_0.avi", tmp_path / "o_1.avi"], None)
    assert record_targets(tmp_path / "all.mp4", 2) == (None, tmp_path / "all.mp4")
    assert record_targets(tmp_path / "videos", 2)[0] == [
        tmp_path / "videos" / f"source{i}.mp4" for i in (0, 1)
    ]


def test_sources_file_on_the_command_line(
    run_stream: RunStream, dynamic_semantic_onnx: Path, tmp_path: Path
) -> None:
    listing = tmp_path / "sources.txt"
    listing.write_text("synthetic:64x128\nsynthetic:64x128@1\n")
    run = run_stream("--sources", listing, "--source", "synthetic:32x64", "--onnx", dynamic_semantic_onnx,
                     "--headless", "--frames", 3, "--max-batch", 2)  # fmt: skip
    assert run.code == 0, run.output
    assert "3 sources -> PEM" in run.stdout and "up to 2 frames per call" in run.stdout
    assert "  source 2: synthetic 32x64 seed 2 (every frame)" in run.stdout
    bad = run_stream("--sources", tmp_path / "nope.txt", "--onnx", dynamic_semantic_onnx, "--headless")
    assert_one_error_line(bad, "--sources", "nope.txt")
