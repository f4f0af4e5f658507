"""Optimiser groups and learning-rate schedule of the reference recipe."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from training.model import build_model, get_preset
from training.optim import OptimConfig, build_optimizer, build_scheduler, lr_factor


def test_param_groups_backbone_lr_and_no_decay() -> None:
    model = build_model(get_preset("cityscapes-tiny"))
    cfg = OptimConfig(lr=1e-3, iters=100)
    opt = build_optimizer(model, cfg)
    groups = {g["name"]: g for g in opt.param_groups}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    norms = (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.Embedding)
    exempt = {
        f"{m}.{n}"
        for m, mod in model.named_modules()
        if isinstance(mod, norms)
        for n, _ in mod.named_parameters()
    }
    exempt |= {n for n, _ in model.named_parameters() if n.endswith(".alpha")}
    assert len(exempt) > 50
    for name, g in groups.items():
        assert g["lr"] == pytest.approx(1e-4 if name.startswith("backbone.") else 1e-3), name
        assert g["weight_decay"] == (0.0 if name in exempt else 0.05), name
    assert groups["predictor.class_embed.weight"]["weight_decay"] == 0.05
    assert groups["predictor.cross_attention.0.alpha"]["weight_decay"] == 0.0
    assert groups["predictor.query_feat.weight"]["weight_decay"] == 0.0


def test_warmup_cosine_schedule() -> None:
    cfg = OptimConfig(lr=1.0, iters=100, warmup_iters=10, warmup_factor=0.001)
    assert lr_factor(0, cfg) == pytest.approx(0.001)
    assert lr_factor(5, cfg) == pytest.approx((0.001 * 0.5 + 0.5) * 0.5 * (1 + math.cos(math.pi * 0.05)))
    assert lr_factor(50, cfg) == pytest.approx(0.5)
    assert lr_factor(100, cfg) == pytest.approx(0.0)
    values = [lr_factor(s, cfg) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    model = build_model(get_preset("cityscapes-tiny"))
    opt = build_optimizer(model, OptimConfig(lr=1e-3, iters=100))
    sched = build_scheduler(opt, OptimConfig(lr=1e-3, iters=100))
    for _ in range(50):
        opt.step()
        sched.step()
    assert opt.param_groups[-1]["lr"] == pytest.approx(0.5e-3)
