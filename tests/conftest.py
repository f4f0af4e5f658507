"""Test-wide settings (deterministic seeds, one torch thread per xdist worker on 2-core machines) and the
artefacts built once per run: tiny exported ONNX models, a tiny model trained with the demo recipe."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass


@pytest.fixture(autouse=True)
def _seed() -> None:
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:
        pass


def shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder shared by every xdist worker of this test run (for artefacts built once per run)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    folder.mkdir(exist_ok=True)
    return folder


REPO = Path(__file__).resolve().parents[1]
MODEL_SIZE = (64, 128)  # the tiny exported models' input size


def _export(folder: Path, preset: str, task: str, batch: int = 1) -> Path:
    dynamic = "_dynamic" if batch == 0 else ""
    path = folder / f"{preset}_{task}_{MODEL_SIZE[0]}x{MODEL_SIZE[1]}{dynamic}.onnx"
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            import torch

            from export.export_onnx import export_onnx
            from training.model import build_model, get_preset

            torch.manual_seed(0)
            export_onnx(build_model(get_preset(preset)).eval(), path, MODEL_SIZE, task, batch)
    return path


@pytest.fixture(scope="session")
def semantic_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cityscapes-tiny, semantic, 64x128, random weights (seeded)."""
    return _export(shared_dir(tmp_path_factory, "shared_runtime"), "cityscapes-tiny", "semantic")


@pytest.fixture(scope="session")
def panoptic_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cityscapes-tiny, panoptic, 64x128, random weights (seeded)."""
    return _export(shared_dir(tmp_path_factory, "shared_runtime"), "cityscapes-tiny", "panoptic")


@pytest.fixture(scope="session")
def dynamic_semantic_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cityscapes-tiny, semantic, 64x128, dynamic batch (`pem export --dynamic-batch`), seeded weights."""
    return _export(shared_dir(tmp_path_factory, "shared_runtime"), "cityscapes-tiny", "semantic", batch=0)


# The tiny-model recipe of the demo and README ("Train and evaluate"): about 2 minutes on 2 cores.
TINY_DATA = {"train": 96, "val": 16, "size": (128, 256), "seed": 1}
TINY_RECIPE = [
    "--preset", "cityscapes-tiny", "--crop", "128x256", "--base-size", "128", "--batch-size", "8",
    "--iters", "250", "--lr", "2e-3", "--warmup-iters", "20", "--points", "512", "--eval-every", "0",
    "--workers", "1", "--threads", "1", "--no-progress",
]  # fmt: skip


@dataclass(frozen=True)
class TrainedTiny:
    data: Path  # synthetic Cityscapes-format dataset (96 train / 16 val scenes, 128x256)
    run: Path  # run folder: best.pt, last.pt, summary.json, metrics.csv, loss_curve.png
    log: str  # the training command's output


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory) -> TrainedTiny:
    """A cityscapes-tiny model trained with the demo recipe, once per test run (shared by workers)."""
    from training.data.synthetic import write_dataset

    folder = shared_dir(tmp_path_factory, "trained_tiny")
    data, run = folder / "synthetic", folder / "run"
    with FileLock(str(folder / ".lock")):
        log_file = folder / "train.log"
        if not (run / "summary.json").is_file():
            write_dataset(data, **TINY_DATA)  # type: ignore[arg-type]
            env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
            result = subprocess.run(
                [sys.executable, str(REPO / "training/train.py"), *TINY_RECIPE, "--data", str(data),
                 "--out", str(run)],
                capture_output=True, text=True, timeout=1200, env=env,
            )  # fmt: skip
            log_file.write_text(result.stdout[-5000:] + result.stderr[-5000:])
            assert result.returncode == 0, log_file.read_text()
    return TrainedTiny(data, run, log_file.read_text())


# Your own data: the synthetic street relabelled for a drivable-area camera
# (training/data/synthetic_custom.py), written in a dataset.yaml layout, and the tiny architecture
# trained on it with the demo's recipe.
CUSTOM_DATA = {"train": 96, "val": 16, "size": (128, 256), "seed": 5}
CUSTOM_RECIPE = [
    "--preset", "tiny", "--crop", "128x256", "--base-size", "128", "--batch-size", "8", "--iters", "250",
    "--lr", "2e-3", "--warmup-iters", "20", "--points", "512", "--workers", "1", "--threads", "1",
    "--no-progress",
]  # fmt: skip


@dataclass(frozen=True)
class TrainedCustom:
    data: Path  # the dataset (dataset.yaml + images + masks or COCO json)
    run: Path  # run folder of `pem train --preset tiny` on it
    log: str


def train_custom(
    tmp_path_factory: pytest.TempPathFactory, name: str, layout: str, classes: str, *flags: str
) -> TrainedCustom:
    """Write the dataset and train on it once per test run (shared by xdist workers)."""
    from training.data.synthetic_custom import write_custom_dataset

    folder = shared_dir(tmp_path_factory, name)
    data, run = folder / "data", folder / "run"
    with FileLock(str(folder / ".lock")):
        log_file = folder / "train.log"
        if not (run / "summary.json").is_file():
            write_custom_dataset(data, layout, classes=classes, **CUSTOM_DATA)  # type: ignore[arg-type]
            env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
            result = subprocess.run(
                [sys.executable, "-m", "pem_rt.cli", "train", *CUSTOM_RECIPE, *flags, "--data", str(data),
                 "--out", str(run)],
                capture_output=True, text=True, timeout=2400, env=env,
            )  # fmt: skip
            log_file.write_text(result.stdout[-8000:] + result.stderr[-5000:])
            assert result.returncode == 0, log_file.read_text()
    return TrainedCustom(data, run, log_file.read_text())


@pytest.fixture(scope="session")
def custom_folders_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedCustom:
    """5 classes in semantic folders, evaluated every 25 steps (the from-scratch curve)."""
    return train_custom(tmp_path_factory, "custom_folders", "folders", "drivable5", "--eval-every", "25")


@pytest.fixture(scope="session")
def custom_coco_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedCustom:
    """The same 5 classes as COCO instances (polygons, compressed and uncompressed RLE)."""
    return train_custom(tmp_path_factory, "custom_coco", "coco", "drivable5", "--eval-every", "50")


@pytest.fixture(scope="session")
def custom_panoptic_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedCustom:
    """COCO instances with 2 stuff and 2 thing classes, trained as a panoptic model."""
    return train_custom(
        tmp_path_factory, "custom_panoptic", "coco", "street4", "--task", "panoptic", "--eval-every", "50"
    )
