"""Checkpoints: our format, the official (detectron2) key map, ImageNet backbones, clear errors."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

from pem_rt.errors import PemError
from training.checkpoint import FORMAT, Checkpoint, load_checkpoint, load_state, save_checkpoint
from training.model import build_model, get_preset
from training.model.weights import (
    load_backbone,
    load_official,
    official_to_ours,
    ours_to_official,
)

# Official names as they appear in PEM's reference modules (pem/modeling/*): one per renamed module.
OFFICIAL_EXAMPLES = {
    "backbone.stem.conv1.weight": "backbone.conv1.weight",
    "backbone.stem.conv1.norm.running_var": "backbone.bn1.running_var",
    "backbone.res2.0.shortcut.weight": "backbone.layer1.0.downsample.0.weight",
    "backbone.res5.2.conv3.norm.bias": "backbone.layer4.2.bn3.bias",
    "sem_seg_head.pixel_decoder.in_projections.3.bn.weight": "pixel_decoder.in_projections.3.bn.weight",
    "sem_seg_head.pixel_decoder.conv_avg.conv.weight": "pixel_decoder.conv_avg.conv.weight",
    "sem_seg_head.pixel_decoder.csm.2.mlp.0.mlp.3.weight": "pixel_decoder.csm.2.mlp.3.weight",
    "sem_seg_head.pixel_decoder.dcn.1.dcn_offset.bias": "pixel_decoder.dcn.1.offset.bias",
    "sem_seg_head.pixel_decoder.dcn.1.dcn.weight": "pixel_decoder.dcn.1.dcn.weight",
    "sem_seg_head.pixel_decoder.dcn.0.up_sample.weight": "pixel_decoder.dcn.0.up.weight",
    "sem_seg_head.pixel_decoder.out.bn.running_mean": "pixel_decoder.out.bn.running_mean",
    "sem_seg_head.predictor.transformer_cross_attention_layers.5.feature_proj.to_query_3x3.bias": (
        "predictor.cross_attention.5.feature_proj.to_query_3x3.bias"
    ),
    "sem_seg_head.predictor.transformer_cross_attention_layers.0.query_proj.1.weight": (
        "predictor.cross_attention.0.query_proj.1.weight"
    ),
    "sem_seg_head.predictor.transformer_cross_attention_layers.0.alpha": "predictor.cross_attention.0.alpha",
    "sem_seg_head.predictor.transformer_self_attention_layers.2.self_attn.in_proj_weight": (
        "predictor.self_attention.2.self_attn.in_proj_weight"
    ),
    "sem_seg_head.predictor.transformer_ffn_layers.4.linear2.bias": "predictor.ffn.4.linear2.bias",
    "sem_seg_head.predictor.query_feat.weight": "predictor.query_feat.weight",
    "sem_seg_head.predictor.mask_embed.layers.2.weight": "predictor.mask_embed.layers.2.weight",
    "sem_seg_head.predictor.input_proj.1.bias": "predictor.input_proj.1.bias",
}


def test_official_names_map_to_ours_and_back() -> None:
    for official, ours in OFFICIAL_EXAMPLES.items():
        assert official_to_ours(official) == ours
        assert ours_to_official(ours) == official


@pytest.mark.parametrize("preset", ["cityscapes-r50", "cityscapes-stdc2"])
def test_every_key_round_trips(preset: str) -> None:
    with torch.device("meta"):
        keys = list(build_model(get_preset(preset)).state_dict())
    official = [ours_to_official(k) for k in keys]
    assert len(set(official)) == len(keys)
    assert [official_to_ours(k) for k in official] == keys
    assert all(
        k.startswith(("backbone.", "sem_seg_head.pixel_decoder.", "sem_seg_head.predictor."))
        for k in official
    )


def d2_name_from_torchvision(key: str) -> str:
    """detectron2's documented torchvision -> d2 renaming (tools/convert-torchvision-to-d2.py), restated."""
    if "layer" not in key:
        key = "stem." + key
    key = re.sub(r"layer(\d)", lambda m: f"res{int(m[1]) + 1}", key)
    key = re.sub(r"bn(\d)", r"conv\1.norm", key)
    return key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


def test_resnet_names_match_detectron2_conversion() -> None:
    tv_keys = [k for k in torchvision.models.resnet50().state_dict() if not k.startswith("fc.")]
    for k in tv_keys:
        if k.endswith("num_batches_tracked"):
            continue
        assert ours_to_official(f"backbone.{k}") == f"backbone.{d2_name_from_torchvision(k)}"


def _official_state(preset: str) -> dict[str, torch.Tensor]:
    model = build_model(get_preset(preset))
    state = {ours_to_official(k): v.clone() for k, v in model.state_dict().items()}
    state["pixel_mean"] = torch.zeros(3, 1, 1)  # buffers the reference model carries
    state["criterion.empty_weight"] = torch.ones(20)
    return state


def test_load_official_pth_into_fresh_model(tmp_path: Path) -> None:
    state = _official_state("cityscapes-tiny")
    path = tmp_path / "model_final.pth"
    torch.save({"model": state, "iteration": 89999}, path)
    model = build_model(get_preset("cityscapes-tiny"))
    report = load_official(model, path)
    assert report.missing == []
    assert set(report.unexpected) == {"pixel_mean", "criterion.empty_weight"}
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[ours_to_official(k)])


def test_load_official_pkl_with_stdc_aliases(tmp_path: Path) -> None:
    state = {k: v.numpy() for k, v in _official_state("cityscapes-tiny").items()}
    state["backbone.x2.0.0.conv.weight"] = state["backbone.features.0.conv.weight"]  # STDC alias
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"model": state, "__author__": "PEM"}))
    model = build_model(get_preset("cityscapes-tiny"))
    report = load_official(model, path)
    assert report.missing == [] and "backbone.x2.0.0.conv.weight" in report.unexpected


def test_class_count_mismatch_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "ade.pth"
    torch.save({"model": _official_state("ade20k-tiny")}, path)
    with pytest.raises(PemError) as e:
        load_official(build_model(get_preset("cityscapes-tiny")), path)
    assert "150 classes" in str(e.value) and "19" in str(e.value) and "\n" not in str(e.value)


def test_torchvision_resnet50_weights(tmp_path: Path) -> None:
    tv = torchvision.models.resnet50()
    path = tmp_path / "resnet50-11ad3fa6.pth"
    torch.save(tv.state_dict(), path)
    with torch.device("cpu"):
        model = build_model(get_preset("cityscapes-r50"))
    report = load_backbone(model, path)
    assert report.missing == [] and report.unexpected == ["fc.weight", "fc.bias"]
    torch.testing.assert_close(model.backbone.layer3[2].conv2.weight, tv.layer3[2].conv2.weight)


def test_detectron2_r50_pkl_weights(tmp_path: Path) -> None:
    tv = torchvision.models.resnet50().state_dict()
    d2 = {d2_name_from_torchvision(k): v.numpy() for k, v in tv.items() if not k.startswith("fc.")}
    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps({"model": d2, "__author__": "torchvision", "matching_heuristics": True}))
    model = build_model(get_preset("cityscapes-r50"))
    report = load_backbone(model, path)
    assert report.missing == []
    torch.testing.assert_close(model.backbone.bn1.running_var, tv["bn1.running_var"])


def test_stdc_imagenet_checkpoint(tmp_path: Path) -> None:
    donor = build_model(get_preset("cityscapes-stdc1")).backbone
    state = {k: v for k, v in donor.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 1024)
    state["conv_last.conv.weight"] = torch.zeros(1024, 1024, 1, 1)
    path = tmp_path / "STDCNet813M_73.91.tar"
    torch.save({"state_dict": state, "epoch": 300}, path)
    model = build_model(get_preset("cityscapes-stdc1"))
    report = load_backbone(model, path)
    assert report.missing == []
    torch.testing.assert_close(
        model.backbone.features[5].conv_list[2].conv.weight, donor.features[5].conv_list[2].conv.weight
    )


def test_wrong_backbone_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(PemError, match="no tensor that fits"):
        load_backbone(build_model(get_preset("cityscapes-stdc1")), path)


def test_own_checkpoint_round_trip(tmp_path: Path) -> None:
    cfg = get_preset("cityscapes-tiny")
    model = build_model(cfg)
    path = save_checkpoint(tmp_path / "ckpt.pt", Checkpoint(cfg, model.state_dict(), {"step": 7}))
    ckpt = load_checkpoint(path)
    assert ckpt.config == cfg and ckpt.extra == {"step": 7}
    assert ckpt.model.keys() == model.state_dict().keys()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing", "foreign"])
def test_bad_checkpoints_give_one_clear_line(tmp_path: Path, damage: str) -> None:
    cfg = get_preset("cityscapes-tiny")
    path = save_checkpoint(tmp_path / "ckpt.pt", Checkpoint(cfg, build_model(cfg).state_dict()))
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "garbage":
        path.write_bytes(b"this is not a checkpoint" * 10)
    elif damage == "missing":
        path = tmp_path / "nope.pt"
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(PemError) as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda c: c["backbone"].update(stdc_base=-16), "backbone.stdc_base"),
        (lambda c: c["decoder"].update(num_queries=10**9), "decoder.num_queries"),
        (lambda c: c["decoder"].update(cross_attention="deformable"), "decoder.cross_attention"),
        (lambda c: c["decoder"].update(num_heads=3), "decoder.hidden_dim is not a multiple"),
        (lambda c: c["inference"].update(overlap_threshold=float("nan")), "inference.overlap_threshold"),
        (lambda c: c["pixel_decoder"].update(use_csm="yes"), "pixel_decoder.use_csm"),
        (lambda c: c["dataset"].update(palette=[[float("inf"), 0, 0]] * 19), "dataset.palette"),
        (lambda c: c.update(pixel_std=[0.0, 1.0, 1.0]), "pixel_std"),
        (lambda c: c.pop("decoder"), "no field 'decoder'"),
        (lambda c: c.update(num_experts=4), "unknown field"),
    ],
)
def test_damaged_config_names_the_field(
    tmp_path: Path, damage: Callable[[dict[str, Any]], None], field: str
) -> None:
    cfg = get_preset("cityscapes-tiny")
    stored = cfg.to_dict()
    damage(stored)
    path = tmp_path / "ckpt.pt"
    torch.save({"format": FORMAT, "config": stored, "model": build_model(cfg).state_dict()}, path)
    with pytest.raises(PemError, match=re.escape(field)) as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_weights_that_do_not_fit_their_config_are_one_line(tmp_path: Path) -> None:
    cfg = get_preset("cityscapes-tiny")
    state = build_model(cfg).state_dict()
    name = next(k for k in state if k.endswith("class_embed.weight"))
    state[name] = torch.zeros(3, 3)
    path = tmp_path / "ckpt.pt"
    torch.save({"format": FORMAT, "config": cfg.to_dict(), "model": state}, path)
    ckpt = load_checkpoint(path)  # the file parses: only the model it describes shows the mismatch
    with pytest.raises(PemError, match=f"{re.escape(str(path))}: its weights do not fit .*{re.escape(name)}"):
        load_state(build_model(ckpt.config), ckpt.model, path)
    torch.save({"format": FORMAT, "config": cfg.to_dict(), "model": {"w": [1, 2]}}, path)
    with pytest.raises(PemError, match="not a state dict of named tensors"):
        load_checkpoint(path)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = get_preset("cityscapes-tiny")
    path = save_checkpoint(tmp_path / "ckpt.pt", Checkpoint(cfg, build_model(cfg).state_dict(), {"step": 1}))
    real_save = torch.save

    def dying_save(obj: object, f: object) -> None:
        real_save(obj, f)
        raise KeyboardInterrupt  # the process is interrupted after writing, before the rename

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, Checkpoint(cfg, build_model(cfg).state_dict(), {"step": 2}))
    monkeypatch.undo()
    assert load_checkpoint(path).extra == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
