"""Fine-tuning from any PEM checkpoint: load what fits, re-initialise the class-dependent tensors.

``--weights`` takes a PEM-RT checkpoint or an official PEM (detectron2) checkpoint. A checkpoint trained
on the same classes loads exactly (every tensor). One trained on other classes loads every tensor whose
shape fits; the class-dependent ones (the class head, ``predictor.class_embed``: K + 1 outputs) keep the
model's fresh initialisation. Any other shape that does not fit means another architecture: one clear
error naming the preset to pass. :class:`TransferReport` says exactly what was kept and re-initialised.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from pem_rt.errors import PemError
from training.checkpoint import load_checkpoint, load_state, read_torch_file
from training.model.config import architecture
from training.model.pem import PEM
from training.model.weights import map_official_state, read_state_dict

CLASS_DEPENDENT = re.compile(r"(^|\.)class_embed\.(weight|bias)$")
Shape = tuple[int, ...]


@dataclass(frozen=True)
class TransferReport:
    """Args:
    source: what was loaded (file and kind).
    kept: keys loaded from the checkpoint, with their parameter counts.
    reinitialised: keys left at the fresh initialisation: (key, model shape, checkpoint shape or None
        when the checkpoint lacks it), with their parameter counts.
    unused: checkpoint keys the model has no place for.
    """

    source: str
    kept: tuple[tuple[str, int], ...]
    reinitialised: tuple[tuple[str, Shape, Shape | None, int], ...]
    unused: tuple[str, ...]

    @property
    def kept_params(self) -> int:
        return sum(n for _, n in self.kept)

    @property
    def reinitialised_params(self) -> int:
        return sum(r[3] for r in self.reinitialised)

    def lines(self) -> list[str]:
        out = [
            f"weights: {self.source}",
            f"  kept {len(self.kept)} tensors ({self.kept_params:,} parameters)",
            f"  re-initialised {len(self.reinitialised)} tensors ({self.reinitialised_params:,} parameters)"
            + (": " if self.reinitialised else ""),
        ]
        out[-1] += ", ".join(
            f"{key} {list(own)}" + (f" (checkpoint {list(theirs)})" if theirs is not None else " (absent)")
            for key, own, theirs, _ in self.reinitialised
        )
        if self.unused:
            out.append(
                f"  unused from the checkpoint: {len(self.unused)} tensors: {', '.join(self.unused[:6])}"
                + (" ..." if len(self.unused) > 6 else "")
            )
        return out


def _param_counts(model: nn.Module) -> dict[str, int]:
    """State-dict key -> learnable parameters it holds (0 for buffers such as BatchNorm statistics)."""
    params = {name: p.numel() for name, p in model.named_parameters()}
    return {k: params.get(k, 0) for k in model.state_dict() if not k.endswith("num_batches_tracked")}


def transfer_state(model: nn.Module, state: Mapping[str, Tensor], source: str, hint: str) -> TransferReport:
    """Load every tensor of ``state`` whose shape fits ``model``; class-dependent misfits stay fresh."""
    own = model.state_dict()
    counts = _param_counts(model)
    usable: dict[str, Tensor] = {}
    reinit: list[tuple[str, Shape, Shape | None, int]] = []
    for key, n in counts.items():
        theirs = state.get(key)
        if (
            theirs is not None
            and tuple(theirs.shape) != tuple(own[key].shape)
            and theirs.numel() == 1 == own[key].numel()
        ):
            theirs = theirs.reshape(own[key].shape)
        if theirs is not None and tuple(theirs.shape) == tuple(own[key].shape):
            usable[key] = theirs
        elif theirs is None or CLASS_DEPENDENT.search(key):
            reinit.append((key, tuple(own[key].shape), None if theirs is None else tuple(theirs.shape), n))
        else:
            raise PemError(
                f"{source}: {key} is {tuple(theirs.shape)} in the checkpoint but {tuple(own[key].shape)} in "
                f"this model: another architecture; {hint}"
            )
    model.load_state_dict(usable, strict=False)
    kept = tuple((k, counts[k]) for k in usable if k in counts)
    unused = tuple(k for k in state if k not in own)
    return TransferReport(source, kept, tuple(reinit), unused)


def load_weights(model: PEM, path: str | os.PathLike[str]) -> TransferReport:
    """``--weights PATH`` into ``model``: a PEM-RT checkpoint (any classes) or official PEM weights."""
    path = Path(path)
    data = read_torch_file(path) if path.suffix != ".pkl" else None
    if isinstance(data, dict) and data.get("format") == "pem-rt/1":
        ckpt = load_checkpoint(path)
        theirs, ours = ckpt.config, model.cfg
        if architecture(theirs) != architecture(ours):
            raise PemError(
                f"--weights {path} is a {theirs.name} model, another architecture than {ours.name}; pass the "
                f"preset it was trained with (and the same --decoder-layers/--cross-attention/--no-csm)"
            )
        same = theirs.dataset.classes == ours.dataset.classes
        what = f"PEM-RT checkpoint {path} ({theirs.name}, step {ckpt.extra.get('step', '?')}, "
        what += f"{theirs.num_classes} classes" + (
            ")" if same else f" -> {ours.num_classes} classes of {ours.name})"
        )
        if same:
            load_state(model, ckpt.model, path)  # exactly as trained: every tensor
            return transfer_state(model, ckpt.model, what, "")
        return transfer_state(model, ckpt.model, what, "pass the preset it was trained with")
    mapped, ignored = map_official_state(read_state_dict(path))
    report = transfer_state(model, mapped, f"official PEM checkpoint {path}", "pass the matching --preset")
    if not report.kept:
        raise PemError(f"--weights {path} has no tensor that fits {model.cfg.name}; is it a PEM checkpoint?")
    return TransferReport(report.source, report.kept, report.reinitialised, report.unused + tuple(ignored))


def _keep_eval(module: nn.Module, _inputs: object) -> None:
    if module.training:
        module.eval()


def freeze_backbone(model: PEM) -> str:
    """Fix the backbone: no gradients, BatchNorm keeps its statistics (runs in eval mode while training)."""
    tensors = params = 0
    for p in model.backbone.parameters():
        p.requires_grad_(False)
        tensors += 1
        params += p.numel()
    model.backbone.register_forward_pre_hook(_keep_eval)
    return f"froze the backbone: {tensors} tensors ({params:,} parameters) fixed, BatchNorm statistics kept"
