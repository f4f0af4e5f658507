"""PEM-RT checkpoints: the model config travels with the weights, files are written atomically.

Format (``torch.save`` of a dict of plain types and tensors, loadable with ``weights_only=True``):
``{"format": "pem-rt/1", "config": ModelConfig.to_dict(), "model": state_dict, ...extra}`` where
training adds ``optimizer``, ``scheduler``, ``step``, ``rng`` for bit-exact resume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pem_rt.errors import PemError
from pem_rt.files import atomic_path
from training.model.config import ModelConfig

FORMAT = "pem-rt/1"


@dataclass
class Checkpoint:
    config: ModelConfig
    model: dict[str, torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint) -> Path:
    """Write atomically: an interrupted save leaves the previous file intact."""
    payload = {"format": FORMAT, "config": ckpt.config.to_dict(), "model": ckpt.model, **ckpt.extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` (safe mode) with one-line errors for missing, truncated or foreign files."""
    p = Path(path)
    if not p.is_file():
        raise PemError(f"checkpoint {p} does not exist; pass the path of a .pt/.pth file")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # any parse failure of a foreign or damaged file (unpickler errors vary)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Weights only load failed" in str(e):
            raise PemError(
                f"{p} holds pickled Python objects that safe loading refuses; if you trust the file, "
                "load it once with torch.load(weights_only=False) and torch.save only its 'model' dict"
            ) from None
        raise PemError(
            f"checkpoint {p} is corrupt or not a PyTorch checkpoint ({first[:120]}); "
            "re-download it or use an earlier checkpoint"
        ) from None


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    data = read_torch_file(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PemError(
            f"{path} is not a PEM-RT checkpoint; official PEM/detectron2 weights are imported with "
            "`--weights` (training.model.weights.load_official)"
        )
    if "config" not in data or "model" not in data:
        raise PemError(f"{path} is a damaged PEM-RT checkpoint (no config or no weights); use an earlier one")
    try:
        cfg = ModelConfig.from_dict(data["config"])
    except PemError as e:
        raise PemError(f"{path}: {e}") from None
    model = data["model"]
    if not isinstance(model, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()
    ):
        raise PemError(
            f"{path} is a damaged PEM-RT checkpoint (its 'model' is not a state dict of named tensors); "
            "use an earlier one"
        )
    extra = {k: v for k, v in data.items() if k not in ("format", "config", "model")}
    return Checkpoint(cfg, model, extra)


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """``model.load_state_dict(state)`` (strict) with one line when the weights do not fit the model
    their checkpoint's config describes (a damaged or hand-edited file)."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else (first[0] if first else "")
        raise PemError(
            f"{path}: its weights do not fit the model its config describes ({detail[:120]}); "
            "the file is damaged: use an earlier checkpoint"
        ) from None
