"""Shared fixtures of the training tests: a small synthetic Cityscapes-format dataset on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.data.synthetic import write_dataset


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 train + 6 val scenes of 64x128 in the real Cityscapes layout (written once per session)."""
    root = tmp_path_factory.mktemp("synthetic_cityscapes")
    write_dataset(root, train=16, val=6, size=(64, 128), seed=3)
    return root
