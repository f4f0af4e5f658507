"""Exports are the slow part of these tests (~10 s of exporter time each): each (preset, task, options)
is exported once per test run and shared between xdist workers through the common base temp dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from export.export_onnx import export_onnx
from pem_rt.model_meta import DEFAULT_POSTPROCESS
from tests.conftest import shared_dir
from training.model import PEM, build_model, get_preset, with_ablation


def make_model(preset: str, cross_attention: str | None = None, seed: int = 0) -> PEM:
    torch.manual_seed(seed)
    cfg = with_ablation(get_preset(preset), cross_attention=cross_attention)  # type: ignore[arg-type]
    return build_model(cfg).eval()


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[PEM, Path]]:
    folder = shared_dir(tmp_path_factory, "shared_exports")

    def get(
        preset: str = "cityscapes-tiny",
        task: str = "semantic",
        size: tuple[int, int] = (64, 128),
        batch: int = 1,
        debug: bool = True,
        cross_attention: str | None = None,
        postprocess: str = DEFAULT_POSTPROCESS,
    ) -> tuple[PEM, Path]:
        model = make_model(preset, cross_attention)  # seeded: the same weights in every worker
        name = (
            f"{preset}_{task}_{size[0]}x{size[1]}_b{batch}_{'debug' if debug else 'plain'}_{cross_attention}"
            f"_{postprocess}"
        )
        path = folder / f"{name}.onnx"
        with FileLock(str(path) + ".lock"):
            if not path.exists():
                export_onnx(model, path, size, task, batch=batch, debug=debug, postprocess=postprocess)
        return model, path

    return get


@pytest.fixture(scope="session")
def plugin_library() -> Path:
    """The plugin library (content-hash cached build under build/plugins; ~70 s cold on two cores)."""
    from plugins.builder import build

    return build().library
