"""Optimiser and learning-rate schedule of the PEM reference (detectron2 build_optimizer, WarmupCosineLR).

AdamW with one parameter group per tensor: backbone tensors get ``lr * backbone_multiplier``; norm
layers (BatchNorm, LayerNorm, GroupNorm, ...), embeddings and PEM-CA's ``alpha`` scale get no weight
decay (the reference exempts norms and embeddings; alpha is a per-channel scale like a norm's gain).
The schedule multiplies every group's lr by a linear warm-up factor (from ``warmup_factor`` to 1 over
``warmup_iters``) times the cosine decay 0.5 (1 + cos(pi t / T)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

NORM_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


@dataclass(frozen=True)
class OptimConfig:
    lr: float
    iters: int
    weight_decay: float = 0.05
    backbone_multiplier: float = 0.1
    warmup_iters: int = 0
    warmup_factor: float = 0.001


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict[str, object]]:
    groups: list[dict[str, object]] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            lr = cfg.lr * (cfg.backbone_multiplier if "backbone" in module_name.split(".") else 1.0)
            no_decay = isinstance(module, (*NORM_TYPES, nn.Embedding)) or name == "alpha"
            groups.append(
                {
                    "params": [p],
                    "lr": lr,
                    "weight_decay": 0.0 if no_decay else cfg.weight_decay,
                    "name": f"{module_name}.{name}" if module_name else name,
                }
            )
    return groups


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """Multiplier of the base lr at optimiser step ``step`` (0-based)."""
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(step, cfg.iters) / max(cfg.iters, 1)))
    if step < cfg.warmup_iters:
        alpha = step / cfg.warmup_iters
        return cosine * (cfg.warmup_factor * (1 - alpha) + alpha)
    return cosine


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
