"""Fine-tuning from any PEM checkpoint: what fits is kept, the class head re-initialised, both counted
exactly; same-class checkpoints load exactly; another architecture is one clear error; a frozen backbone
keeps its weights and BatchNorm statistics through training steps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pem_rt.errors import PemError
from training.checkpoint import Checkpoint, save_checkpoint
from training.data.loader import TrainDataset, collate_train, open_dataset
from training.data.synthetic_custom import write_custom_dataset
from training.data.transforms import AugmentConfig
from training.dataset_meta import DatasetMeta
from training.losses.criterion import LossConfig, SetCriterion
from training.model import build_model, get_preset
from training.model.transfer import freeze_backbone, load_weights
from training.model.weights import ours_to_official
from training.train_step import batch_losses

REPO = Path(__file__).resolve().parents[2]
FIVE = DatasetMeta(
    "five", ("a", "b", "c", "d", "e"), ((1, 1, 1),) * 5, (3, 4), (0, 1, 2, 3, 4)
)  # any 5 classes


def _city_checkpoint(path: Path, preset: str = "cityscapes-tiny") -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    model = build_model(get_preset(preset))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    save_checkpoint(path, Checkpoint(model.cfg, state, {"step": 250}))
    return state


def test_other_classes_keep_all_but_the_class_head(tmp_path: Path) -> None:
    theirs = _city_checkpoint(tmp_path / "city.pt")
    torch.manual_seed(2)
    model = build_model(get_preset("tiny", FIVE))
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_weights(model, tmp_path / "city.pt")
    head = {"predictor.class_embed.weight": (6, 32), "predictor.class_embed.bias": (6,)}
    assert [(k, s) for k, s, _, _ in report.reinitialised] == list(head.items())
    assert [t for _, _, t, _ in report.reinitialised] == [(20, 32), (20,)]
    n_params = sum(p.numel() for p in model.parameters())
    assert report.reinitialised_params == 6 * 32 + 6
    assert report.kept_params == n_params - 198
    keys = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert len(report.kept) == len(keys) - 2 and not report.unused
    state = model.state_dict()
    for k in keys:
        expected = fresh[k] if k in head else theirs[k]
        assert torch.equal(state[k], expected), k
    lines = report.lines()
    assert lines[0].startswith(
        f"weights: PEM-RT checkpoint {tmp_path / 'city.pt'} (cityscapes-tiny, step 250"
    )
    assert lines[1] == f"  kept {len(keys) - 2} tensors ({n_params - 198:,} parameters)"
    assert lines[2] == (
        "  re-initialised 2 tensors (198 parameters): predictor.class_embed.weight [6, 32] (checkpoint "
        "[20, 32]), predictor.class_embed.bias [6] (checkpoint [20])"
    )


def test_same_classes_load_exactly(tmp_path: Path) -> None:
    theirs = _city_checkpoint(tmp_path / "city.pt")
    model = build_model(get_preset("tiny"))  # the architecture preset with Cityscapes' classes
    report = load_weights(model, tmp_path / "city.pt")
    assert not report.reinitialised and report.kept_params == sum(p.numel() for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, theirs[k]), k


def test_official_checkpoint_of_other_classes(tmp_path: Path) -> None:
    theirs = _city_checkpoint(tmp_path / "unused.pt")
    official = {ours_to_official(k): v for k, v in theirs.items()}
    official["pixel_mean"] = torch.zeros(3)
    torch.save({"model": official, "iteration": 90000}, tmp_path / "model_final.pth")
    model = build_model(get_preset("tiny", FIVE))
    report = load_weights(model, tmp_path / "model_final.pth")
    assert report.source == f"official PEM checkpoint {tmp_path / 'model_final.pth'}"
    assert len(report.reinitialised) == 2 and report.unused == ("pixel_mean",)
    assert torch.equal(
        model.state_dict()["pixel_decoder.out.bn.weight"], theirs["pixel_decoder.out.bn.weight"]
    )


def test_another_architecture_is_one_clear_line(tmp_path: Path) -> None:
    _city_checkpoint(tmp_path / "stdc1.pt", "cityscapes-stdc1")
    with pytest.raises(PemError) as e:
        load_weights(build_model(get_preset("tiny", FIVE)), tmp_path / "stdc1.pt")
    assert "cityscapes-stdc1 model, another architecture than five-tiny" in str(e.value)
    assert "\n" not in str(e.value)


def test_frozen_backbone_keeps_weights_and_statistics(tmp_path: Path) -> None:
    write_custom_dataset(tmp_path / "data", "folders", train=4, val=1, size=(64, 128), seed=1)
    source = open_dataset("custom", tmp_path / "data", "train", False)
    model = build_model(get_preset("tiny", source.meta))
    message = freeze_backbone(model)
    n = sum(p.numel() for p in model.backbone.parameters())
    assert message.startswith(
        f"froze the backbone: {len(list(model.backbone.parameters()))} tensors ({n:,} parameters)"
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    criterion = SetCriterion(5, LossConfig(num_points=256))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    data = TrainDataset(source, AugmentConfig((64, 128), 64, (0.5, 2.0)), False)
    model.train()
    for step in range(2):
        batch = collate_train([data[(i, step)] for i in range(2)])
        total, _ = batch_losses(model, model, criterion, batch, torch.device("cpu"))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    after = model.state_dict()
    for k, v in after.items():
        if k.startswith("backbone."):
            assert torch.equal(v, before[k]), k  # weights and BatchNorm running statistics
    assert not torch.equal(after["predictor.class_embed.weight"], before["predictor.class_embed.weight"])
    assert model.training and not model.backbone.training


def test_train_prints_what_was_kept(tmp_path: Path) -> None:
    _city_checkpoint(tmp_path / "city.pt")
    write_custom_dataset(tmp_path / "data", "coco", train=4, val=2, size=(64, 128), seed=1)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pem_rt.cli", "train", "--preset", "tiny", "--data", str(tmp_path / "data"),
         "--out", str(tmp_path / "run"), "--weights", str(tmp_path / "city.pt"), "--freeze-backbone",
         "--crop", "64x128", "--base-size", "64", "--batch-size", "2", "--iters", "2", "--points", "256",
         "--eval-every", "0", "--workers", "0", "--threads", "1", "--no-progress"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    model = build_model(get_preset("tiny", FIVE))
    n_params = sum(p.numel() for p in model.parameters())
    keys = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert f"  kept {len(keys) - 2} tensors ({n_params - 198:,} parameters)" in result.stdout
    assert "  re-initialised 2 tensors (198 parameters): predictor.class_embed.weight" in result.stdout
    assert "froze the backbone" in result.stdout
    assert "training drivable5-tiny on custom train (4 images)" in result.stdout
