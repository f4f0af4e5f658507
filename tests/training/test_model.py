"""Model structure: output shapes for every preset, ablation switches, parameter counts, config I/O."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pem_rt.errors import PemError
from training.model import PRESETS, ModelConfig, build_model, get_preset, with_ablation
from training.model.prototype_selection import prototype_selection


@pytest.mark.parametrize("name", list(PRESETS))
def test_output_shapes_every_preset(name: str) -> None:
    cfg = get_preset(name)
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96), all_predictions=True)
    q, k = cfg.decoder.num_queries, cfg.num_classes
    assert out.class_logits.shape == (1, q, k + 1)
    assert out.mask_logits.shape == (1, q, 16, 24)
    assert len(out.aux) == cfg.decoder.num_layers
    assert all(p.mask_logits.shape == (1, q, 16, 24) for p in out.aux)


# Exact parameter counts of the reference implementation for Cityscapes (shared/PEM_REFERENCE.md).
REFERENCE_PARAMS = {
    "cityscapes-r50": (35_532_581, 23_508_032, 2_178_001, 9_846_548),
    "cityscapes-stdc1": (16_957_829, 5_318_304, 1_792_977, 9_846_548),
    "cityscapes-stdc2": (20_988_293, 9_348_768, 1_792_977, 9_846_548),
}


@pytest.mark.parametrize("name", list(REFERENCE_PARAMS))
def test_parameter_counts_equal_reference(name: str) -> None:
    with torch.device("meta"):
        model = build_model(get_preset(name))

    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    total, backbone, pixel, predictor = REFERENCE_PARAMS[name]
    assert count(model) == total
    assert (count(model.backbone), count(model.pixel_decoder), count(model.predictor)) == (
        backbone,
        pixel,
        predictor,
    )


def test_paper_param_counts_within_one_percent() -> None:
    for name, millions in (("cityscapes-r50", 35.6), ("cityscapes-stdc1", 17.0), ("cityscapes-stdc2", 21.0)):
        with torch.device("meta"):
            n = sum(p.numel() for p in build_model(get_preset(name)).parameters())
        assert abs(n / 1e6 / millions - 1) < 0.01, name


def test_inference_path_equals_supervised_path() -> None:
    """Eval mode computes intermediate attention masks at low resolution: same final prediction."""
    model = build_model(get_preset("cityscapes-tiny")).eval()
    x = torch.randn(2, 3, 128, 192)
    with torch.no_grad():
        fast = model(x, all_predictions=False)
        full = model(x, all_predictions=True)
    assert fast.aux == []
    torch.testing.assert_close(fast.class_logits, full.class_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.mask_logits, full.mask_logits, atol=1e-4, rtol=1e-5)


def test_training_mode_returns_all_predictions_and_backpropagates() -> None:
    model = build_model(get_preset("cityscapes-tiny")).train()
    out = model(torch.randn(2, 3, 64, 64))
    loss = out.class_logits.sum() + out.mask_logits.mean() + sum(p.mask_logits.mean() for p in out.aux)
    loss.backward()
    assert len(out.aux) == 3
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > 0.9 * len(grads)


@pytest.mark.parametrize(
    "ablation",
    [dict(cross_attention="masked"), dict(use_csm=False), dict(num_layers=1), dict(num_layers=7)],
)
def test_ablations_build_and_run(ablation: dict[str, object]) -> None:
    cfg = with_ablation(get_preset("cityscapes-tiny"), **ablation)  # type: ignore[arg-type]
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), all_predictions=True)
    assert len(out.aux) == cfg.decoder.num_layers
    assert out.mask_logits.shape[1] == cfg.decoder.num_queries


def test_csm_off_removes_csm_parameters() -> None:
    with torch.device("meta"):
        on = build_model(get_preset("cityscapes-tiny"))
        off = build_model(with_ablation(get_preset("cityscapes-tiny"), use_csm=False))
    assert any("csm" in k for k in on.state_dict())
    assert not any("csm" in k for k in off.state_dict())


def test_pem_ca_uses_the_reference_prototype_selection() -> None:
    """PEM-CA's prototypes are exactly prototype_selection() of its normalised tokens and queries."""
    model = build_model(get_preset("cityscapes-tiny")).eval()
    layer = model.predictor.cross_attention[0]
    b, q, c, h, w = 2, 20, 32, 4, 6
    tgt, qpos = torch.randn(b, q, c), torch.randn(b, q, c)
    mem, pos = torch.randn(b, c, h, w), torch.randn(b, c, h, w)
    mask = torch.randn(b, q, h * w)
    tokens = torch.nn.functional.normalize(layer.feature_proj(mem + pos), dim=-1)
    queries = torch.nn.functional.normalize(layer.query_proj(tgt + qpos), dim=-1)
    protos = prototype_selection(tokens, queries, mask, layer.heads)
    expected = (
        layer.final(torch.nn.functional.normalize(layer.proj(protos * queries), dim=1) * layer.alpha + protos)
        + tgt
    )
    with torch.no_grad():
        torch.testing.assert_close(layer(tgt, mem, pos, qpos, mask), expected)


def test_input_size_must_be_multiple_of_32() -> None:
    model = build_model(get_preset("cityscapes-tiny")).eval()
    with pytest.raises(PemError, match="multiple of 32"):
        model(torch.randn(1, 3, 64, 70))


def test_config_round_trips_through_dict() -> None:
    cfg = with_ablation(get_preset("coco-panoptic-stdc2"), cross_attention="masked", num_layers=3)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_preset_is_one_clear_line() -> None:
    with pytest.raises(PemError) as e:
        get_preset("cityscapes-r101")
    msg = str(e.value)
    assert "\n" not in msg and "cityscapes-r101" in msg and "cityscapes-r50" in msg


def test_presets_cover_datasets_and_backbones() -> None:
    for dataset, classes in (("cityscapes", 19), ("ade20k", 150), ("coco-panoptic", 133)):
        for backbone in ("r50", "stdc1", "stdc2"):
            cfg = get_preset(f"{dataset}-{backbone}")
            assert cfg.num_classes == classes
            assert dataclasses.astuple(cfg.decoder)[:4] == (256, 8, 100, 6)
