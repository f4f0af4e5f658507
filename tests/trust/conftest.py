"""The demo-like runs folder, made once per test run and shared by the workers."""

from __future__ import annotations

import pytest
from filelock import FileLock

from tests.conftest import shared_dir
from tests.trust.demo_runs import DemoRuns, make_demo_runs


def _runs(tmp_path_factory: pytest.TempPathFactory, name: str, later_stages: bool) -> DemoRuns:
    folder = shared_dir(tmp_path_factory, name)
    with FileLock(str(folder / ".lock")):
        done = folder / "done"
        if not done.is_file():
            make_demo_runs(folder / "runs", later_stages=later_stages)
            done.touch()
    root = folder / "runs"
    demo = root / "demo"
    return DemoRuns(root, demo / "data", demo / "run", demo / "run" / "cityscapes-tiny_semantic_64x128.onnx",
                    demo / "compare")  # fmt: skip


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    """All that `make demo` leaves: dataset, trained model, reference graph, calibration, comparison."""
    return _runs(tmp_path_factory, "demo_runs", later_stages=True)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    """Only the dataset, the trained tiny model and its reference graph (what the kill tests start from)."""
    return _runs(tmp_path_factory, "tiny_runs", later_stages=False)
