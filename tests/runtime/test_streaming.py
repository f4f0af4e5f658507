"""``Segmenter.stream``: the iterator and the callback give the labels the CLI gives, on the synthetic source
(frame by frame) and on the loopback RTSP server (the same decoded frames, matched by content).

The tiny fixture models have random weights and label every frame alike, which would make "the same
labels" say nothing; these tests use a deployable graph whose labels follow the pixels (blue channel
in steps of 14, the fixture's metadata kept), run by ONNX Runtime like any exported model."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from runtime.segmenter import Segmenter
from runtime.sources import SyntheticSource

from .conftest import RunStream
from .rtsp_server import RtspServer


@pytest.fixture(scope="module")
def content_onnx(semantic_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = onnx.load(str(semantic_onnx))
    h, w = 64, 128
    nodes = [
        helper.make_node("Slice", ["image", "c0", "c1", "axis"], ["blue"]),
        helper.make_node("Cast", ["blue"], ["bluef"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["bluef", "step"], ["scaled"]),
        helper.make_node("Floor", ["scaled"], ["ids"]),
        helper.make_node("Min", ["ids", "top"], ["clamped"]),
        helper.make_node("Cast", ["clamped"], ["ids8"], to=TensorProto.UINT8),
        helper.make_node("Reshape", ["ids8", "shape"], ["labels"]),
    ]
    inits = [
        helper.make_tensor("c0", TensorProto.INT64, [1], [0]),
        helper.make_tensor("c1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axis", TensorProto.INT64, [1], [3]),
        helper.make_tensor("step", TensorProto.FLOAT, [], [14.0]),
        helper.make_tensor("top", TensorProto.FLOAT, [], [18.0]),
        helper.make_tensor("shape", TensorProto.INT64, [3], [1, h, w]),
    ]
    graph = helper.make_graph(
        nodes, "content", [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, h, w, 3])],
        [helper.make_tensor_value_info("labels", TensorProto.UINT8, [1, h, w])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    for prop in source.metadata_props:
        model.metadata_props.add(key=prop.key, value=prop.value)
    path = tmp_path_factory.mktemp("content") / "content_semantic_64x128.onnx"
    onnx.save(model, str(path))
    return path


def _masks(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.glob("*.png"))]


def test_iterator_and_callback_give_the_cli_labels_on_the_synthetic_source(
    content_onnx: Path, tmp_path: Path, run_stream: RunStream
) -> None:
    masks = tmp_path / "masks"
    run = run_stream("--source", "synthetic:96x160", "--onnx", content_onnx, "--headless", "--frames", 6,
                     "--save-masks", masks)  # fmt: skip
    assert run.code == 0, run.output
    cli = _masks(masks)
    assert len(cli) == 6 and len({m.tobytes() for m in cli}) == 6  # labels that differ frame to frame
    with Segmenter(content_onnx, log=lambda _: None) as seg:
        pairs = list(seg.stream("synthetic:96x160", max_frames=6))
        seen: list[np.ndarray] = []
        metrics = seg.stream(SyntheticSource((96, 160)), lambda f, r: seen.append(r.labels), max_frames=6)
    assert [f.shape for f, _ in pairs] == [(96, 160, 3)] * 6
    for got in ([r.labels for _, r in pairs], seen):
        assert all(np.array_equal(a, b) for a, b in zip(got, cli, strict=True))
    assert metrics.frames == 6


def test_leaving_the_loop_early_stops_the_stream(content_onnx: Path) -> None:
    before = threading.active_count()
    with Segmenter(content_onnx, log=lambda _: None) as seg:
        for i, _ in enumerate(seg.stream("synthetic:64x128", realtime=True)):
            if i == 2:
                break
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before  # capture, inference and the loop thread are gone


def test_iterator_on_the_loopback_rtsp_server_matches_the_cli(
    content_onnx: Path, clip: Path, ffmpeg: str, tmp_path: Path, run_stream: RunStream
) -> None:
    masks = tmp_path / "masks"
    with RtspServer(clip, ffmpeg, workdir=tmp_path) as server:
        run = run_stream("--source", server.url, "--onnx", content_onnx, "--headless", "--frames", 20,
                         "--save-masks", masks)  # fmt: skip
        assert run.code == 0, run.output
        with Segmenter(content_onnx, log=lambda _: None) as seg:
            pairs = list(seg.stream(server.url, max_frames=20))
    cli = {m.tobytes() for m in _masks(masks)}
    api = [r.labels.tobytes() for _, r in pairs]
    assert len(pairs) == 20 and len(set(api)) >= 8  # a moving clip: labels change
    # both read the same looping clip, decoded from the same packets: a frame both saw has equal labels
    shared = sum(a in cli for a in api)
    assert shared >= 5, f"only {shared} of 20 label maps also came out of the CLI"
    clip_frames = []
    cap = cv2.VideoCapture(str(clip))
    while (ok_frame := cap.read())[0]:
        clip_frames.append(ok_frame[1].astype(np.float32))
    for frame, _ in pairs:  # every frame is a frame of the clip (not a stale or torn one)
        errors = [float(np.mean(np.abs(frame.astype(np.float32) - c))) for c in clip_frames]
        assert min(errors) < 6.0, min(errors)
