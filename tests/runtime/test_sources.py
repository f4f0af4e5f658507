"""--source/--camera parsing and the sources' behaviour (without the model)."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from pem_rt.errors import PemError
from pem_rt.synthetic import SyntheticScene
from runtime.sources import CaptureSource, ImageFilesSource, SyntheticSource, has_gstreamer, open_source

STOP = threading.Event()


def test_dispatch(photo_folder: Path, clip: Path) -> None:
    assert isinstance(open_source(), SyntheticSource) and open_source().size == (720, 1280)
    s = open_source("synthetic:96x160", realtime=True)
    assert isinstance(s, SyntheticSource) and s.size == (96, 160) and s.live
    folder = open_source(str(photo_folder))
    assert isinstance(folder, ImageFilesSource) and not folder.live and len(folder.paths) >= 4
    glob = open_source(str(photo_folder / "img_0[01].png"))
    assert isinstance(glob, ImageFilesSource) and [p.name for p in glob.paths] == ["img_00.png", "img_01.png"]
    video = open_source(str(clip))
    assert isinstance(video, CaptureSource) and not video.live
    net = open_source("rtsp://127.0.0.1:8554/live")
    assert isinstance(net, CaptureSource) and net.live
    assert isinstance(open_source(camera=0), CaptureSource)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("synthetic:12x12", "too small"),
        ("synthetic:big", "not HxW"),
        ("/no/such/file.mp4", "no such file or folder"),
        ("/tmp/*.no-such-images-here", "matches no images"),
    ],
)
def test_bad_sources(spec: str, message: str) -> None:
    with pytest.raises(PemError, match=message):
        open_source(spec)
    with pytest.raises(PemError, match="not both"):
        open_source("synthetic", camera=0)


def test_gstreamer_and_csi_say_what_is_missing() -> None:
    if has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    for spec in ("csi://0", "videotestsrc ! appsink"):
        with pytest.raises(PemError, match="no GStreamer support") as e:
            open_source(spec)
        assert "\n" not in str(e.value)


def test_video_reads_every_frame_then_ends(clip: Path) -> None:
    source = open_source(str(clip))
    source.open()
    frames = []
    while (frame := source.read(STOP)) is not None:
        frames.append(frame)
    source.close()
    assert len(frames) == 30 and frames[0].shape == (96, 160, 3) and source.fps == 10.0
    assert source.stem(3) == "clip_000003"


def test_synthetic_scene_is_deterministic_and_has_ground_truth() -> None:
    a, b = SyntheticScene(90, 160), SyntheticScene(90, 160)
    assert np.array_equal(a.frame(7), b.frame(7)) and not np.array_equal(a.frame(7), a.frame(8))
    labels = a.labels(7)
    assert labels.shape == (90, 160) and {0, 1, 2, 10, 13} <= set(np.unique(labels).tolist())


def test_image_stems_and_unreadable_images(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"junk")
    (tmp_path / "c.png").write_bytes((tmp_path / "a.png").read_bytes())
    said: list[str] = []
    source = open_source(str(tmp_path), log=said.append)
    assert source.read(STOP) is not None and source.stem(0) == "a"
    assert source.read(STOP) is not None and source.stem(1) == "c"  # b.jpg skipped, said, counted
    assert source.read(STOP) is None
    assert source.lost == 1 and source.damage == ("b.jpg",)
    assert len(said) == 1 and "b.jpg: not a readable image" in said[0] and said[0].startswith("warning:")
    strict = open_source(str(tmp_path))
    strict.strict = True
    assert strict.read(STOP) is not None
    with pytest.raises(PemError, match=r"b\.jpg: not a readable image.*--strict"):
        strict.read(STOP)
