"""Recordings play everywhere: H.264 in MP4 by default (ffprobe says so), the other codecs on request, and
the decoded frames equal the overlay frames the stream rendered, within the codec's error."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from runtime.pipeline import Outputs, Pipeline
from runtime.recorder import CODECS, Recorder
from runtime.segmenter import Segmenter
from runtime.sinks import Delivered
from runtime.sources import SyntheticSource

from .conftest import RunStream


@pytest.fixture(scope="session")
def ffprobe() -> str:
    found = shutil.which("ffprobe")
    assert found, "ffprobe not found: `make install` installs it (Debian/Ubuntu: apt-get install ffmpeg)"
    return found


def probe(ffprobe: str, video: Path) -> dict[str, str]:
    out = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=codec_name,width,height,pix_fmt,nb_read_frames", "-of", "json", str(video)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    stream: dict[str, str] = json.loads(out)["streams"][0]
    return stream


def decode(video: Path) -> list[np.ndarray]:
    import av

    with av.open(str(video)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


class KeepOverlays:
    wants_overlay = True

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def write(self, item: Delivered) -> None:
        assert item.overlay is not None
        self.images.append(item.overlay.copy())

    def close(self) -> None:
        pass


def test_recording_is_h264_and_decodes_back_to_the_overlay_frames(
    semantic_onnx: Path, tmp_path: Path, ffprobe: str
) -> None:
    video = tmp_path / "out.mp4"
    keep = KeepOverlays()
    with Segmenter(semantic_onnx) as seg:
        outputs = Outputs(record=video, sinks=(keep,))
        Pipeline(seg, SyntheticSource((96, 160)), outputs, max_frames=12, log=lambda _: None).run()
    info = probe(ffprobe, video)
    assert info["codec_name"] == "h264" and info["pix_fmt"] == "yuv420p", info
    assert (int(info["width"]), int(info["height"])) == (160, 96) and int(info["nb_read_frames"]) == 12
    frames = decode(video)
    assert len(frames) == len(keep.images) == 12
    scores = [psnr(a, b) for a, b in zip(frames, keep.images, strict=True)]
    assert min(scores) > 30.0, scores  # 4:2:0 video of sharp class borders: ~35-40 dB; a wrong frame < 20
    assert psnr(frames[3], keep.images[7]) < min(scores) - 3  # frames are in order, not merely alike


@pytest.mark.parametrize(("codec", "name"), [("hevc", "hevc"), ("mjpeg", "mjpeg"), ("mp4v", "mpeg4")])
def test_other_codecs_on_request(codec: str, name: str, tmp_path: Path, ffprobe: str) -> None:
    rng = np.random.default_rng(0)
    blocks = [rng.integers(0, 255, (12, 20, 3)) for _ in range(5)]
    images = [np.kron(b, np.ones((8, 8, 1))).astype(np.uint8) for b in blocks]  # 8x8 blocks: codec-friendly
    recorder = Recorder(tmp_path / f"{codec}.mp4", 10.0, codec)
    for image in images:
        recorder.write(image)
    path = recorder.close()
    assert path == tmp_path / f"{codec}.mp4" and not list(tmp_path.glob(".*partial*"))
    assert probe(ffprobe, path)["codec_name"] == name
    frames = decode(path)
    assert len(frames) == 5 and min(psnr(a, b) for a, b in zip(frames, images, strict=True)) > 20


def test_odd_sizes_are_rounded_to_even_and_nothing_written_leaves_no_file(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "odd.mkv", 25.0)
    recorder.write(np.full((51, 77, 3), 128, np.uint8))
    recorder.write(np.full((40, 40, 3), 128, np.uint8))  # another size: scaled to the first
    path = recorder.close()
    assert path is not None and [f.shape for f in decode(path)] == [(50, 76, 3)] * 2
    assert Recorder(tmp_path / "none.mp4", 25.0).close() is None and not (tmp_path / "none.mp4").exists()


def test_cli_records_h264_by_default_and_the_codec_flag_is_checked(
    semantic_onnx: Path, tmp_path: Path, run_stream: RunStream, ffprobe: str
) -> None:
    video = tmp_path / "cli.mp4"
    run = run_stream("--source", "synthetic:64x128", "--onnx", semantic_onnx, "--headless", "--frames", 3,
                     "--record", video)  # fmt: skip
    assert run.code == 0, run.output
    assert probe(ffprobe, video)["codec_name"] == "h264"
    bad = run_stream("--onnx", semantic_onnx, "--record", video, "--record-codec", "vp9")
    assert bad.code == 2 and "invalid choice: 'vp9'" in bad.stderr
    assert set(CODECS) == {"h264", "hevc", "mjpeg", "mp4v"}
