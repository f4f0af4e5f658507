"""The Python API: `runtime.Segmenter(...)(frame) -> Result`, semantic and panoptic, any frame size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

import runtime
from pem_rt.synthetic import SyntheticScene
from runtime.overlay import HudStats, Overlay

from .conftest import panning_frames


def test_semantic_equals_onnxruntime_at_the_model_size(semantic_onnx: Path) -> None:
    seg = runtime.Segmenter(semantic_onnx, log=lambda m: None)
    session = ort.InferenceSession(str(semantic_onnx), providers=["CPUExecutionProvider"])
    for frame in panning_frames(3, (64, 128)):
        result = seg(frame)
        want = session.run(["labels"], {"image": frame[None]})[0][0]
        np.testing.assert_array_equal(result.labels, want)
        assert result.panoptic is None and set(result.timings) == {"preprocess", "infer", "postprocess"}
    assert seg.input_size == (64, 128) and seg.meta.task == "semantic"


def test_any_frame_size_comes_back_at_that_size(semantic_onnx: Path) -> None:
    with runtime.Segmenter(semantic_onnx, resize="letterbox") as seg:
        for size in ((480, 640), (33, 250), (128, 64)):
            frame = SyntheticScene(max(16, size[0]), max(16, size[1])).frame(0)
            assert seg(frame).labels.shape == frame.shape[:2]
    with runtime.Segmenter(semantic_onnx, resize="stretch") as seg:
        assert seg(SyntheticScene(100, 100).frame(0)).labels.shape == (100, 100)


def test_panoptic_result_is_consistent(panoptic_onnx: Path) -> None:
    seg = runtime.Segmenter(panoptic_onnx)
    for frame in panning_frames(2, (96, 160)):
        r = seg(frame)
        assert r.panoptic is not None and r.segments is not None
        assert r.labels.shape == r.panoptic.shape == (96, 160)
        assert (r.labels[r.panoptic == 0] == 255).all()
        for s in r.segments:
            assert (r.labels[r.panoptic == s.id] == s.category_id).all()


def test_overlay_draws_colours_legend_and_hud(semantic_onnx: Path) -> None:
    seg = runtime.Segmenter(semantic_onnx)
    scene = SyntheticScene(360, 640)
    frame, truth = scene.frame(5), scene.labels(5)
    result = runtime.Result(truth)
    plain = Overlay(seg.meta, alpha=0.0, hud=False, outlines=False).render(frame, result)
    np.testing.assert_array_equal(plain, frame)
    full = Overlay(seg.meta, alpha=1.0, hud=False, outlines=False).render(frame, result)
    road = truth == 0
    assert (full[road] == seg.meta.palette[0][::-1]).all()  # BGR of the road's palette colour
    hud = Overlay(seg.meta, alpha=0.5).render(frame, result, HudStats(fps=30.0, latency_ms=20.0))
    assert hud.shape == frame.shape
    assert not np.array_equal(
        hud[:40, :200], Overlay(seg.meta, 0.5, hud=False).render(frame, result)[:40, :200]
    )
