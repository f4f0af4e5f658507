"""The deployable ONNX graph equals PyTorch in ONNX Runtime and carries its metadata."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.deploy_model import DeployModel
from pem_rt.model_meta import ModelMeta
from runtime.panoptic import assemble_panoptic
from tests.conftest import TrainedTiny
from training.checkpoint import Checkpoint, save_checkpoint
from training.model import build_model, get_preset
from training.model.postprocess import panoptic_inference

Exported = Callable[..., tuple[torch.nn.Module, Path]]


def frames(n: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Smooth random frames (blurred noise + gradients), closer to images than white noise."""
    rng = np.random.default_rng(seed)
    h, w = size
    small = rng.integers(0, 256, (n, h // 8, w // 8, 3)).astype(np.float32)
    big = np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)
    ramp = np.linspace(0, 60, w, dtype=np.float32)[None, None, :, None]
    return np.clip(big + ramp + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)


def run_onnx(path: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"image": image}), strict=True))


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


@pytest.mark.parametrize("preset", ["cityscapes-r50", "cityscapes-stdc1"])
def test_semantic_graph_equals_pytorch(exported: Exported, preset: str) -> None:
    model, path = exported(preset)
    image = frames(1, (64, 128))
    got = run_onnx(path, image)
    with torch.no_grad():
        want = DeployModel(model, "semantic", debug=True)(torch.from_numpy(image))
    labels, class_logits, mask_logits, scores = (t.numpy() for t in want)
    assert got["labels"].dtype == np.uint8 and got["labels"].shape == (1, 64, 128)
    assert (got["labels"] == labels).mean() >= 0.999
    assert relative_error(got["scores"], scores) <= 1e-3
    assert relative_error(got["class_logits"], class_logits) <= 1e-3
    assert relative_error(got["mask_logits"], mask_logits) <= 1e-3


def test_metadata_describes_the_model(exported: Exported) -> None:
    model, path = exported("cityscapes-tiny")
    proto = onnx.load(str(path))
    meta = ModelMeta.from_props({p.key: p.value for p in proto.metadata_props}, str(path))
    assert meta.name == "cityscapes-tiny" and meta.task == "semantic"
    assert meta.classes == model.cfg.dataset.classes and meta.palette[0] == (128, 64, 128)
    assert (meta.input_height, meta.input_width, meta.batch) == (64, 128, 1)
    assert meta.pixel_mean == model.cfg.pixel_mean and meta.opset >= 19
    assert meta.decoder_layers == 3 and meta.cross_attention == "pem"
    assert "torch" in meta.exporter
    [inp] = proto.graph.input
    assert inp.name == "image" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 64, 128, 3]
    onnx.checker.check_model(proto, full_check=True)


def test_only_standard_ops(exported: Exported) -> None:
    _, path = exported("cityscapes-tiny")
    proto = onnx.load(str(path))
    assert {o.domain for o in proto.opset_import} <= {"", "ai.onnx"}
    ops = {n.op_type for n in proto.graph.node}
    assert {"DeformConv", "ArgMax", "GatherElements"} <= ops


def test_bgr_input_is_converted_inside_the_graph(exported: Exported) -> None:
    """Swapping the frame's channels must change the result: the graph really reads BGR."""
    model, path = exported("cityscapes-tiny")
    image = frames(1, (64, 128), seed=3)
    bgr = run_onnx(path, image)["scores"]
    with torch.no_grad():
        rgb_fed = DeployModel(model, "semantic", debug=True)(torch.from_numpy(image[..., ::-1].copy()))[3]
        bgr_fed = DeployModel(model, "semantic", debug=True)(torch.from_numpy(image))[3]
    assert relative_error(bgr, bgr_fed.numpy()) <= 1e-3
    assert relative_error(bgr, rgb_fed.numpy()) > 1e-2


def _random_panoptic_case(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class logits [Q, K+1] and mask logits [Q, H, W] with box-shaped, overlapping masks: some queries
    confident, some not, some voting "no object", stuff classes repeated (merging)."""
    g = torch.Generator().manual_seed(seed)
    q, k, h, w = 10, 4, 24, 32
    cls = torch.randn(q, k + 1, generator=g)
    votes = torch.randint(0, k + 1, (q,), generator=g)
    cls[torch.arange(q), votes] += torch.rand(q, generator=g) * 12
    masks = torch.full((q, h, w), -6.0) + torch.randn(q, h, w, generator=g)
    for i in range(q):
        y0, x0 = (
            int(torch.randint(0, h - 4, (1,), generator=g)),
            int(torch.randint(0, w - 4, (1,), generator=g)),
        )
        y1, x1 = (
            y0 + int(torch.randint(4, h, (1,), generator=g)),
            x0 + int(torch.randint(4, w, (1,), generator=g)),
        )
        masks[i, y0:y1, x0:x1] = 2.0 + 6 * float(torch.rand(1, generator=g)) + torch.randn(1, generator=g)
    return cls, masks


def test_panoptic_outputs_plus_host_assembly_equal_reference() -> None:
    """DeployModel's panoptic tensors + runtime.panoptic.assemble_panoptic == panoptic_inference."""
    deploy = DeployModel(build_model(get_preset("cityscapes-tiny")), "panoptic")
    things = (2, 3)
    segments_seen = 0
    for seed in range(40):
        cls, masks = _random_panoptic_case(seed)
        deploy.num_classes = cls.shape[1] - 1
        labels, _, winner, winner_area, mask_area = deploy._panoptic(cls[None], masks[None])
        seg, segments = assemble_panoptic(
            labels[0].numpy(), winner[0].numpy(), winner_area[0].numpy(), mask_area[0].numpy(), things, 0.8
        )
        seg_ref, segments_ref = panoptic_inference(cls, masks, things, 0.8, 0.8)
        assert [(s.id, s.category_id, s.isthing) for s in segments] == [
            (s.id, s.category_id, s.isthing) for s in segments_ref
        ], seed
        assert np.array_equal(seg, seg_ref.numpy()), seed
        segments_seen += len(segments)
    assert segments_seen > 40  # the cases exercise real segments, merges and drops


@pytest.mark.parametrize("n", [1, 3])
def test_panoptic_graph_with_dynamic_batch_equals_pytorch(exported: Exported, n: int) -> None:
    model, path = exported("cityscapes-tiny", task="panoptic", batch=0)
    image = frames(n, (64, 128), seed=5)
    got = run_onnx(path, image)
    with torch.no_grad():
        want = DeployModel(model, "panoptic", debug=True)(torch.from_numpy(image))
    names = ["query_labels", "query_scores", "winner", "winner_area", "mask_area"]
    for name, ref in zip(names, want[:5], strict=True):
        assert got[name].dtype == ref.numpy().dtype, name
        if name == "query_scores":
            np.testing.assert_allclose(got[name], ref.numpy(), rtol=1e-4, atol=1e-6)
        elif name == "winner":
            assert (got[name] == ref.numpy()).mean() >= 0.999
        else:
            assert np.abs(got[name].astype(np.int64) - ref.numpy()).max() <= 0.001 * 64 * 128, name
        assert got[name].shape[0] == n


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "export/export_onnx.py", *args], capture_output=True, text=True, check=False
    )


def test_cli_exports_a_checkpoint(tmp_path: Path) -> None:
    cfg = get_preset("cityscapes-tiny")
    ckpt = save_checkpoint(tmp_path / "run" / "best.pt", Checkpoint(cfg, build_model(cfg).state_dict()))
    run = _cli("--checkpoint", str(ckpt), "--size", "64x64")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "run" / "cityscapes-tiny_semantic_64x64.onnx").is_file()
    assert "100.000% of pixels equal" in run.stdout and run.stdout.strip().endswith("export: PASSED")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--size", "64x64", "--preset", "cityscapes-r50"],
            "holds a cityscapes-tiny model, not cityscapes-r50",
        ),
        (["--size", "64x70"], "--size 64x70 is not a multiple of 32"),
        (["--size", "64x64", "--missing"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from export.export_onnx import main

    cfg = get_preset("cityscapes-tiny")
    ckpt = save_checkpoint(tmp_path / "best.pt", Checkpoint(cfg, build_model(cfg).state_dict()))
    if "--missing" in args:
        args = ["--size", "64x64"]
        ckpt = tmp_path / "nope.pt"
    assert main(["--checkpoint", str(ckpt), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_trained_checkpoint_graph_equals_pytorch(trained_tiny: TrainedTiny, tmp_path: Path) -> None:
    """Trained weights: label maps agree on >= 99.9% of pixels and the float outputs before
    the argmax (class and mask logits, class scores) within 1e-3 of their range, on held-out frames."""
    from calibration.frames import read_frames
    from export.export_onnx import ModelSource, export_onnx, load_model

    model, _ = load_model(ModelSource(trained_tiny.run / "best.pt"))
    path = tmp_path / "trained.onnx"
    export_onnx(model, path, (128, 256), "semantic", debug=True)
    images = read_frames(trained_tiny.data / "leftImg8bit" / "val", (128, 256), 4)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for image in images:
        got = dict(
            zip(
                [o.name for o in session.get_outputs()],
                session.run(None, {"image": image[None]}),
                strict=True,
            )
        )
        with torch.no_grad():
            want = DeployModel(model, "semantic", debug=True)(torch.from_numpy(image[None]))
        labels, class_logits, mask_logits, scores = (t.numpy() for t in want)
        assert (got["labels"] == labels).mean() >= 0.999
        for name, ref in (("class_logits", class_logits), ("mask_logits", mask_logits), ("scores", scores)):
            assert relative_error(got[name], ref) <= 1e-3, name
