"""torchrun / DistributedDataParallel plumbing: process-group setup from torchrun's environment,
synchronised BatchNorm, and rank helpers.

Under ``torchrun --nproc_per_node N training/train.py ...`` each process reads RANK, WORLD_SIZE and
LOCAL_RANK, joins the NCCL (GPU) or gloo (CPU) group and takes GPU LOCAL_RANK. BatchNorm becomes
``nn.SyncBatchNorm`` on GPUs; PyTorch's SyncBatchNorm refuses CPU tensors, so on CPU (gloo) we use
:class:`CPUSyncBatchNorm`, which all-reduces the batch statistics with differentiable collectives
(detectron2's NaiveSyncBatchNorm idea): batch statistics, and so gradients, equal a single process's.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor, nn

# The autograd-aware all_reduce we need is deprecated in favour of functional collectives that do not
# differentiate through the reduction; keep it, quietly.
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_reduce is deprecated")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(
            backend, timeout=timedelta(minutes=30), device_id=dev if backend == "nccl" else None
        )
    return DistInfo(rank, world, local_rank), dev


def cleanup(synchronise: bool = True) -> None:
    """Tear the process group down. ``synchronise``: first wait for every rank, so no rank closes its gloo
    connections while another still uses them (which aborts that one: "terminate called without an active
    exception"); pass False on an error path, where the other ranks may never arrive."""
    if dist.is_available() and dist.is_initialized():
        if synchronise:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are the whole global batch's, over any backend (gloo on CPU).

    Mean and mean of squares are all-reduced with autograd-aware collectives, so the backward pass is
    the one of BatchNorm over the concatenated batch. Same parameters and buffers as BatchNorm2d.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (
            self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        ):
            return super().forward(x)
        c = x.shape[1]
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        sums = dist_fn.all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), count]))
        total = sums[-1]
        mean = sums[:c] / total
        # second pass on centred values: no cancellation (E[x^2] - E[x]^2 loses digits)
        var = dist_fn.all_reduce(((x - mean.view(1, c, 1, 1)) ** 2).sum(dim=(0, 2, 3))) / total
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                assert self.num_batches_tracked is not None
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * total / (total - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        invstd = torch.rsqrt(var + self.eps)
        scale = invstd if self.weight is None else self.weight * invstd
        shift = -mean * scale if self.bias is None else self.bias - mean * scale
        return x * scale.view(1, c, 1, 1) + shift.view(1, c, 1, 1)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d (backbone, pixel decoder, PEM-CA's LocalRepresentation) -> a synchronised one."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert_cpu(model)


def _convert_cpu(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, CPUSyncBatchNorm):
        ref = module.running_mean if module.running_mean is not None else module.weight
        new = CPUSyncBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            device=None if ref is None else ref.device,
            dtype=None if ref is None else ref.dtype,
        )
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _convert_cpu(child))
    return module
