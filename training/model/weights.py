"""Import of weights in other layouts: official PEM (detectron2) checkpoints and ImageNet backbones.

The key map is two ordered lists of regex rules, official -> ours and ours -> official, so a state
dict round-trips. Official checkpoints come as detectron2 ``.pth`` (``{"model": state_dict, ...}``) or
``.pkl`` (``{"model": {name: ndarray}}``); STDC checkpoints list every backbone tensor twice
(``features.N`` and the ``x2..x32`` aliases), the aliases are dropped.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pem_rt.errors import PemError
from training.checkpoint import read_torch_file

Rule = tuple[str, str | Callable[[re.Match[str]], str]]


def _res_to_layer(m: re.Match[str]) -> str:
    return f"backbone.layer{int(m[1]) - 1}.{m[2]}."


def _layer_to_res(m: re.Match[str]) -> str:
    return f"backbone.res{int(m[1]) + 1}.{m[2]}."


# official (detectron2 / PEM reference) -> ours; first matching rule wins, then later ones still apply
OFFICIAL_TO_OURS: list[Rule] = [
    (r"^backbone\.stem\.conv1\.norm\.", "backbone.bn1."),
    (r"^backbone\.stem\.conv1\.", "backbone.conv1."),
    (r"^backbone\.res(\d)\.(\d+)\.", _res_to_layer),
    (r"^(backbone\.layer\d\.\d+\.)conv(\d)\.norm\.", r"\1bn\2."),
    (r"^(backbone\.layer\d\.\d+\.)shortcut\.norm\.", r"\1downsample.1."),
    (r"^(backbone\.layer\d\.\d+\.)shortcut\.", r"\1downsample.0."),
    (r"^sem_seg_head\.pixel_decoder\.csm\.(\d+)\.mlp\.0\.mlp\.", r"pixel_decoder.csm.\1.mlp."),
    (r"^sem_seg_head\.pixel_decoder\.dcn\.(\d+)\.dcn_offset\.", r"pixel_decoder.dcn.\1.offset."),
    (r"^sem_seg_head\.pixel_decoder\.dcn\.(\d+)\.up_sample\.", r"pixel_decoder.dcn.\1.up."),
    (r"^sem_seg_head\.pixel_decoder\.", "pixel_decoder."),
    (r"^sem_seg_head\.predictor\.transformer_cross_attention_layers\.", "predictor.cross_attention."),
    (r"^sem_seg_head\.predictor\.transformer_self_attention_layers\.", "predictor.self_attention."),
    (r"^sem_seg_head\.predictor\.transformer_ffn_layers\.", "predictor.ffn."),
    (r"^sem_seg_head\.predictor\.", "predictor."),
]

OURS_TO_OFFICIAL: list[Rule] = [
    (r"^backbone\.bn1\.", "backbone.stem.conv1.norm."),
    (r"^backbone\.conv1\.", "backbone.stem.conv1."),
    (r"^(backbone\.layer\d\.\d+\.)bn(\d)\.", r"\1conv\2.norm."),
    (r"^(backbone\.layer\d\.\d+\.)downsample\.1\.", r"\1shortcut.norm."),
    (r"^(backbone\.layer\d\.\d+\.)downsample\.0\.", r"\1shortcut."),
    (r"^backbone\.layer(\d)\.(\d+)\.", _layer_to_res),
    (r"^pixel_decoder\.csm\.(\d+)\.mlp\.", r"sem_seg_head.pixel_decoder.csm.\1.mlp.0.mlp."),
    (r"^pixel_decoder\.dcn\.(\d+)\.offset\.", r"sem_seg_head.pixel_decoder.dcn.\1.dcn_offset."),
    (r"^pixel_decoder\.dcn\.(\d+)\.up\.", r"sem_seg_head.pixel_decoder.dcn.\1.up_sample."),
    (r"^pixel_decoder\.", "sem_seg_head.pixel_decoder."),
    (r"^predictor\.cross_attention\.", "sem_seg_head.predictor.transformer_cross_attention_layers."),
    (r"^predictor\.self_attention\.", "sem_seg_head.predictor.transformer_self_attention_layers."),
    (r"^predictor\.ffn\.", "sem_seg_head.predictor.transformer_ffn_layers."),
    (r"^predictor\.", "sem_seg_head.predictor."),
]

# official keys that carry no weights of ours: normalisation constants, loss buffers, STDC aliases
_IGNORED_OFFICIAL = re.compile(
    r"^(pixel_mean|pixel_std|criterion\..*|backbone\.x(2|4|8|16|32)\..*|backbone\.(conv_last|fc|bn|linear|gap)\..*)$"
)


def _apply(rules: list[Rule], key: str) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def official_to_ours(key: str) -> str:
    return _apply(OFFICIAL_TO_OURS, key)


def ours_to_official(key: str) -> str:
    return _apply(OURS_TO_OFFICIAL, key)


@dataclass
class ImportReport:
    """What an import matched: our keys left at their initial values, official keys not used."""

    loaded: int
    missing: list[str]
    unexpected: list[str]

    def summary(self) -> str:
        lines = [f"loaded {self.loaded} tensors"]
        if self.missing:
            lines.append(
                f"missing (kept initial values): {len(self.missing)}: {', '.join(self.missing[:8])}"
                + (" ..." if len(self.missing) > 8 else "")
            )
        if self.unexpected:
            lines.append(
                f"unexpected (ignored): {len(self.unexpected)}: {', '.join(self.unexpected[:8])}"
                + (" ..." if len(self.unexpected) > 8 else "")
            )
        return "\n".join(lines)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a state dict from .pth/.pt (torch) or .pkl (detectron2 pickle of numpy arrays)."""
    p = Path(path)
    if p.suffix == ".pkl":
        if not p.is_file():
            raise PemError(f"weights file {p} does not exist")
        try:
            with open(p, "rb") as f:
                data = pickle.load(f, encoding="latin1")
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise PemError(f"weights file {p} is corrupt or not a detectron2 .pkl ({e})") from None
    else:
        data = read_torch_file(p)
    if isinstance(data, Mapping):
        for key in ("model", "state_dict"):
            if key in data and isinstance(data[key], Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not data:
        raise PemError(f"{p} holds no state dict (expected a dict of tensors, or one under 'model')")
    out: dict[str, Tensor] = {}
    for k, v in data.items():
        if isinstance(v, np.ndarray):
            v = torch.from_numpy(np.array(v))  # keeps 0-d arrays 0-d
        if isinstance(v, Tensor):
            out[str(k).removeprefix("module.")] = v
    return out


def _load_mapped(model: nn.Module, mapped: dict[str, Tensor], unexpected: list[str]) -> ImportReport:
    own = model.state_dict()
    usable: dict[str, Tensor] = {}
    for key, value in mapped.items():
        if key not in own:
            unexpected.append(key)
            continue
        if tuple(own[key].shape) != tuple(value.shape) and own[key].numel() == value.numel() == 1:
            value = value.reshape(own[key].shape)  # counters saved as [1] by some exporters
        if tuple(own[key].shape) != tuple(value.shape):
            hint = ""
            if key.endswith("class_embed.weight") or key.endswith("class_embed.bias"):
                hint = (
                    f": the checkpoint has {value.shape[0] - 1} classes, the preset "
                    f"{own[key].shape[0] - 1}; choose the preset of the dataset it was trained on"
                )
            raise PemError(
                f"shape mismatch for {key}: checkpoint {tuple(value.shape)}, "
                f"model {tuple(own[key].shape)}{hint}"
            )
        usable[key] = value
    model.load_state_dict(usable, strict=False)
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    return ImportReport(len(usable), missing, unexpected)


def load_official(model: nn.Module, path: str | os.PathLike[str]) -> ImportReport:
    """Load an official PEM (detectron2-layout) checkpoint file into our PEM model."""
    return import_official_state(model, read_state_dict(path))


def map_official_state(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Official PEM (detectron2) names -> ours; also the official keys that carry no weights of ours."""
    ignored = [k for k in state if _IGNORED_OFFICIAL.match(k)]
    return {official_to_ours(k): v for k, v in state.items() if not _IGNORED_OFFICIAL.match(k)}, ignored


def import_official_state(model: nn.Module, state: Mapping[str, Tensor]) -> ImportReport:
    """Load a state dict with official PEM (detectron2) names into our PEM model."""
    mapped, unexpected = map_official_state(state)
    report = _load_mapped(model, mapped, [])
    report.unexpected = [ours_to_official(k) for k in report.unexpected] + unexpected
    return report


def load_backbone(model: nn.Module, path: str | os.PathLike[str]) -> ImportReport:
    """Load ImageNet backbone weights into ``model.backbone``: torchvision ResNet-50 (.pth), detectron2's
    converted R-50.pkl, or STDC-Seg's STDCNet813M/STDCNet1446 checkpoints."""
    backbone = getattr(model, "backbone", model)
    state = read_state_dict(path)
    mapped: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, value in state.items():
        if re.match(r"^(fc|bn|linear|gap|conv_last)\.|^x(2|4|8|16|32)\.", key):
            ignored.append(key)
            continue
        ours = official_to_ours(key if key.startswith("backbone.") else f"backbone.{key}")
        mapped[ours.removeprefix("backbone.")] = value
    report = _load_mapped(backbone, mapped, [])
    report.unexpected += ignored
    if report.loaded == 0:
        raise PemError(
            f"{path} has no tensor that fits the {type(backbone).__name__} backbone; "
            "is it the right backbone's checkpoint?"
        )
    return report
