"""Which decoder a source gets: NVDEC where a GPU and PyNvVideoCodec are, a Jetson's hardware decoder
through GStreamer, OpenCV elsewhere, with one line where a GPU is present but cannot be used; and the
fall back to OpenCV when NVDEC cannot open a stream (here PyNvVideoCodec is not installed: a real
failure). The NVDEC decode itself needs an NVIDIA GPU and is not exercised on this machine."""

from __future__ import annotations

import threading
from pathlib import Path

from runtime.gpu_decode import Decoder, choose_decoder
from runtime.sources import CaptureSource, open_source


def _root(tmp_path: Path, *files: str) -> Path:
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# R36 (release), REVISION: 4.0\n" if name.endswith("nv_tegra_release") else "")
    return tmp_path


def test_decoder_choice_follows_the_machine(tmp_path: Path, clip: Path) -> None:
    assert choose_decoder("rtsp://cam/live", gstreamer=False, root=_root(tmp_path / "cpu")) == Decoder(
        "opencv"
    )
    gpu = choose_decoder("rtsp://cam/live", gstreamer=False, root=_root(tmp_path / "gpu", "dev/nvidia0"))
    assert gpu.kind == "opencv" and "pip install -e '.[gpu]'" in gpu.note  # no PyNvVideoCodec here
    jetson = _root(tmp_path / "jetson", "etc/nv_tegra_release")
    hw = choose_decoder(str(clip), gstreamer=True, root=jetson)
    assert hw.kind == "gstreamer" and f"uri={clip.resolve().as_uri()} ! nvvidconv" in hw.pipeline
    assert "appsink drop=true max-buffers=1" in hw.pipeline
    assert "uri=rtsp://cam/live" in choose_decoder("rtsp://cam/live", True, jetson).pipeline
    no_gst = choose_decoder("rtsp://cam/live", gstreamer=False, root=jetson)
    assert no_gst.kind == "opencv" and "no GStreamer" in no_gst.note


def test_nvdec_that_cannot_open_falls_back_to_opencv_with_one_line(clip: Path) -> None:
    lines: list[str] = []
    source = open_source(str(clip), log=lines.append)
    assert isinstance(source, CaptureSource) and source.decoder is None and lines == []  # no GPU: quiet
    source.decoder = Decoder("nvdec")  # as on a GPU machine
    source.open()
    frames = 0
    while source.read(threading.Event()) is not None:
        frames += 1
    source.close()
    assert frames == 30 and source.decoder is None
    assert len(lines) == 1 and "NVDEC cannot decode it" in lines[0] and "decoding with OpenCV" in lines[0]
