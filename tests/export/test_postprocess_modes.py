"""Post-processing modes: `fast` (combine at mask resolution, up-sample only the result) against `exact`
(every query mask up-sampled first, the reference), in ONNX Runtime sessions of tiny models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch.nn import functional as F

from export.compare import main as compare_main
from export.deploy_model import DeployModel
from pem_rt.engine_meta import EngineSidecar, TensorInfo, read_sidecar, write_sidecar
from pem_rt.errors import PemError
from pem_rt.model_meta import ModelMeta
from runtime.panoptic import assemble_panoptic
from tests.conftest import TrainedTiny
from tests.export.test_export_onnx import _random_panoptic_case, frames, run_onnx
from training.model import build_model, get_preset
from training.model.postprocess import semantic_scores

Exported = Callable[..., tuple[torch.nn.Module, Path]]


def meta_of(path: Path) -> ModelMeta:
    return ModelMeta.from_props({p.key: p.value for p in onnx.load(str(path)).metadata_props}, str(path))


def test_fast_agrees_with_exact_on_the_trained_model(trained_tiny: TrainedTiny, tmp_path: Path) -> None:
    """`pem compare --backends onnx:exact,onnx:fast` on the held-out val frames of the demo recipe's model:
    fast computes the edge cells exactly, so its labels are exact's (measured: 100.000 %, BENCHMARKS.md);
    without the edge cells it was 98.1 %, mIoU -1.26."""
    out = tmp_path / "compare"
    code = compare_main([
        "--checkpoint", str(trained_tiny.run / "best.pt"), "--data", str(trained_tiny.data),
        "--size", "128x256", "--backends", "onnx:exact,onnx:fast", "--out", str(out),
        "--min-agreement", "0.995", "--max-miou-drop", "0.1",
    ])  # fmt: skip
    assert code == 0
    b = json.loads((out / "report.json").read_text())["backends"]
    assert set(b) == {"onnx:exact", "onnx:fast"}
    assert b["onnx:fast"]["agreement"] >= 0.995
    assert abs(b["onnx:fast"]["mIoU"] - b["onnx:exact"]["mIoU"]) * 100 <= 0.1
    assert b["onnx:fast"]["errors"]["scores"]["max_abs"] > 0  # really another post-processing
    graphs = {meta_of(p).postprocess: p for p in out.glob("*.debug.onnx")}
    assert set(graphs) == {"exact", "fast"}


def test_fast_semantic_graph_refines_the_upsampled_class_scores(exported: Exported) -> None:
    """The fast graph's debug scores are the mask-resolution scores up-sampled; its labels equal PyTorch's
    and exact's."""
    model, path = exported("cityscapes-tiny", postprocess="fast")
    assert meta_of(path).postprocess == "fast"
    image = frames(1, (64, 128), seed=3)
    got = run_onnx(path, image)
    probs = F.softmax(torch.from_numpy(got["class_logits"]), dim=-1)[..., :-1]
    low = torch.einsum("bqk,bqhw->bkhw", probs, torch.from_numpy(got["mask_logits"]).sigmoid())
    want = F.interpolate(low, size=(64, 128), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(got["scores"], want.numpy(), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        labels = DeployModel(model, "semantic", postprocess="fast")(torch.from_numpy(image))[0]
    assert (got["labels"] == labels.numpy()).mean() >= 0.999
    exact = semantic_scores(torch.from_numpy(got["class_logits"]), torch.from_numpy(got["mask_logits"]),
                            (64, 128), fast=False).argmax(1).numpy()  # fmt: skip
    assert (got["labels"] == exact).mean() >= 0.999


def test_more_classes_than_queries_keeps_the_exact_order(exported: Exported) -> None:
    """ADE20K-tiny: 150 classes > 20 queries, so up-sampling the class scores would cost more: the debug
    scores of fast keep the exact order, and its labels (mask resolution plus exact edge cells) are
    exact's."""
    _, exact = exported("ade20k-tiny", postprocess="exact")
    _, fast = exported("ade20k-tiny", postprocess="fast")
    assert (meta_of(exact).postprocess, meta_of(fast).postprocess) == ("exact", "fast")
    image = frames(1, (64, 128), seed=4)
    a, b = run_onnx(exact, image), run_onnx(fast, image)
    assert np.array_equal(a["labels"], b["labels"])
    np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5, atol=1e-6)


def test_metadata_without_the_mode_reads_as_exact(exported: Exported) -> None:
    _, path = exported("cityscapes-tiny", postprocess="fast")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["pem.postprocess"] == "fast"
    del props["pem.postprocess"]
    assert ModelMeta.from_props(props, "old.onnx").postprocess == "exact"
    with pytest.raises(PemError, match="postprocess 'quick'"):
        ModelMeta.from_props({**props, "pem.postprocess": "quick"}, "bad.onnx")


def test_panoptic_outputs_have_the_same_structure(exported: Exported) -> None:
    _, exact = exported("cityscapes-tiny", task="panoptic", postprocess="exact")
    _, fast = exported("cityscapes-tiny", task="panoptic", postprocess="fast")
    image = frames(2, (64, 128), seed=6)[:1]
    a, b = run_onnx(exact, image), run_onnx(fast, image)
    assert list(a)[:5] == list(b)[:5] == list(meta_of(fast).outputs)
    for name in meta_of(fast).outputs:
        assert (a[name].dtype, a[name].shape) == (b[name].dtype, b[name].shape), name
    np.testing.assert_allclose(a["query_scores"], b["query_scores"], rtol=1e-5)
    assert np.array_equal(a["query_labels"], b["query_labels"])


def test_fast_panoptic_agrees_with_exact_on_segments() -> None:
    """Box-shaped masks at 1/4 resolution (smoothed: real mask logits are not pixel noise): fast's winner
    map matches exact's on 99.9 % of pixels (the edge cells computed as exact does; without them 98 %);
    the host assembly finds the same segments unless a query sits at the overlap threshold, where the areas
    counted at mask resolution can tip it the other way."""
    deploy = DeployModel(build_model(get_preset("cityscapes-tiny")), "panoptic", postprocess="fast")
    things, agreement, same_segments, cases = (2, 3), 0.0, 0, 30
    for seed in range(cases):
        cls, low = _random_panoptic_case(seed)
        low = F.avg_pool2d(low[None], 3, 1, 1, count_include_pad=False)
        size = (low.shape[2] * 4, low.shape[3] * 4)
        deploy.num_classes = cls.shape[1] - 1
        full = F.interpolate(low, size=size, mode="bilinear", align_corners=False)
        outs = [deploy._panoptic(cls[None], full), deploy._panoptic_fast(cls[None], low, size)]
        (e_labels, _, e_winner, e_won, e_own), (f_labels, _, f_winner, f_won, f_own) = (
            [t[0].numpy() for t in o] for o in outs
        )
        assert f_winner.shape == size and f_winner.dtype == np.uint8 and f_won.dtype == np.int32
        assert np.array_equal(e_labels, f_labels)
        assert f_won.sum() == size[0] * size[1]  # areas in frame pixels
        agreement += float((e_winner == f_winner).mean()) / cases
        _, e_segments = assemble_panoptic(e_labels, e_winner, e_won, e_own, things, 0.8)
        _, f_segments = assemble_panoptic(f_labels, f_winner, f_won, f_own, things, 0.8)
        same_segments += e_segments == f_segments
    assert agreement >= 0.995
    assert same_segments >= 20


def test_sidecar_records_the_mode_and_reads_old_ones_as_exact(exported: Exported, tmp_path: Path) -> None:
    _, path = exported("cityscapes-tiny", postprocess="fast")
    meta = meta_of(path)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    io = (TensorInfo("image", "uint8", (1, 64, 128, 3)),)
    write_sidecar(
        engine,
        EngineSidecar(
            meta, "fp16", "tensorrt_rtx", "1.7", ("sm86",), "", io, io, "", "pem", postprocess="fast"
        ),
    )
    assert read_sidecar(engine).postprocess == "fast"
    sidecar = Path(f"{engine}.json")
    d = json.loads(sidecar.read_text())
    del d["postprocess"], d["model"]["postprocess"]
    sidecar.write_text(json.dumps(d))
    old = read_sidecar(engine)
    assert (old.postprocess, old.model.postprocess) == ("exact", "exact")
    d["postprocess"], d["model"]["postprocess"] = "exact", "fast"
    sidecar.write_text(json.dumps(d))
    with pytest.raises(PemError, match="not a valid engine sidecar"):
        read_sidecar(engine)


@pytest.mark.parametrize("task", ["semantic", "panoptic"])
def test_fast_graph_parses_in_tensorrt_rtx(exported: Exported, plugin_library: Path, task: str) -> None:
    from tests.export.test_build_engine import parse_in_tensorrt_rtx

    _, path = exported("cityscapes-tiny", task=task, debug=False, postprocess="fast")
    network, _parser, _ = parse_in_tensorrt_rtx(path, plugin_library)
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    assert outputs == list(meta_of(path).outputs)
