"""Test-wide settings: deterministic seeds and one torch thread per xdist worker (2-core machines)."""

from __future__ import annotations

import os

import pytest


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
