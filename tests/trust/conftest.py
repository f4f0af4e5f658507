"""The demo-like runs folder, made once per test run and shared by the workers."""

from __future__ import annotations

import pytest
from filelock import FileLock

from tests.conftest import shared_dir
from tests.trust.demo_runs import DemoRuns, make_demo_runs


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    folder = shared_dir(tmp_path_factory, "demo_runs")
    with FileLock(str(folder / ".lock")):
        done = folder / "done"
        if not done.is_file():
            make_demo_runs(folder / "runs")
            done.touch()
    root = folder / "runs"
    demo = root / "demo"
    return DemoRuns(root, demo / "data", demo / "run", demo / "run" / "cityscapes-tiny_semantic_64x128.onnx",
                    demo / "compare")  # fmt: skip
