"""Distributed training on CPU with gloo under real torchrun: gradients equal a single process's on the
same global batch, and `torchrun ... training/train.py` trains with rank-0-only outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from training.data.loader import EvalDataset, collate_train, open_dataset
from training.data.targets import semantic_targets
from training.losses.criterion import LossConfig, SetCriterion
from training.model import build_model, get_preset
from training.run_log import read_metrics
from training.train_step import batch_losses

REPO = Path(__file__).resolve().parents[2]

# Run by torchrun in each of 2 processes: DDP + synchronised BN over gloo, half the batch per rank.
# In float64: at initialisation the Hungarian matching and PEM-CA's argmax sit on near-ties, so float32
# rounding differences alone (even 1e-6 of input noise in one process) move gradients by ~1e-3.
WORKER = """
import sys, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from training import distributed
from training.train_step import batch_losses
from training.losses.criterion import LossConfig, SetCriterion
from training.model import build_model, get_preset
torch.set_num_threads(1)
info, device = distributed.setup("cpu")
assert info.world == 2 and dist.get_backend() == "gloo"
batch = torch.load(sys.argv[1])
torch.manual_seed(0)
model = build_model(get_preset("cityscapes-tiny")).train().double()
model = distributed.convert_sync_batchnorm(model, device)
net = DistributedDataParallel(model)
half = {"images": batch["images"][2 * info.rank : 2 * info.rank + 2],
        "targets": batch["targets"][2 * info.rank : 2 * info.rank + 2]}
criterion = SetCriterion(19, LossConfig(num_points=0))
total, _ = batch_losses(net, model, criterion, half, device)
total.backward()
if info.rank == 0:
    torch.save({k: p.grad for k, p in model.named_parameters()}, sys.argv[2])
# DDP's reducer holds the process group: free it first (as train.py's scope does), or its destructor runs at
# interpreter exit after the group is gone, which aborted a rank now and then under load
del net, total
distributed.cleanup()
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _global_batch(root: Path) -> dict[str, object]:
    """4 whole val images with 7 targets each (equal target counts per rank: the CE term is a mean over
    each rank's queries, so DDP equals one process only when ranks hold equally many targets)."""
    source = open_dataset("cityscapes", root, "val", panoptic=False)
    samples = []
    for sample in EvalDataset(source, panoptic=False):
        target = semantic_targets(sample["semantic"])
        if len(target["labels"]) == 7:
            samples.append({"image": sample["image"].permute(2, 0, 1).contiguous(), **target})
    assert len(samples) >= 4, "the synthetic val split should have 4 images with all 7 classes"
    return collate_train(samples[:4])


def test_ddp_gradients_equal_single_process(synthetic_root: Path, tmp_path: Path) -> None:
    batch = _global_batch(synthetic_root)
    torch.save(batch, tmp_path / "batch.pt")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*cmd, str(script), str(tmp_path / "batch.pt"), str(tmp_path / "grads.pt")],
        capture_output=True, text=True, timeout=300, env=_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    ddp_grads = torch.load(tmp_path / "grads.pt")

    torch.manual_seed(0)
    model = build_model(get_preset("cityscapes-tiny")).train().double()
    total, _ = batch_losses(
        model, model, SetCriterion(19, LossConfig(num_points=0)), batch, torch.device("cpu")
    )
    total.backward()
    compared = 0
    for name, p in model.named_parameters():
        if p.grad is None:
            assert ddp_grads[name] is None, name
            continue
        diff = float((ddp_grads[name] - p.grad).norm())
        assert diff <= 1e-9 * float(p.grad.norm()) + 1e-12, (name, diff, float(p.grad.norm()))
        compared += int(p.grad.norm() > 1e-6)
    assert compared > 100  # nearly every tensor has a real (non-zero) gradient that was compared


def test_torchrun_training_two_processes(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    args = [
        "--preset", "cityscapes-tiny", "--data", str(synthetic_root), "--out", str(out), "--crop", "64x128",
        "--base-size", "64", "--batch-size", "2", "--iters", "3", "--eval-every", "3", "--points", "256",
        "--workers", "0", "--threads", "1", "--no-progress", "--device", "cpu",
    ]  # fmt: skip
    result = subprocess.run(
        [*cmd, str(REPO / "training/train.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "2 process(es) on cpu, batch 2x1x2" in result.stdout
    assert result.stdout.count("train: PASSED") == 2  # both ranks finish; only rank 0 logs the rest
    assert result.stdout.count("final val mIoU") == 1
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["step"] == 3 and len(ckpt["rng"]) == 2
    assert len(read_metrics(out / "metrics.csv")["loss"]) == 3
