"""Shared fixtures of the plugin tests: one cached build of the libraries, TensorRT-RTX helpers."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from plugins.builder import BuildResult, build


@pytest.fixture(scope="session")
def plugin_build() -> BuildResult:
    """The full build (every architecture); content-hash cached under build/plugins, so only the first
    test session after a source change compiles (about 70 s on two cores)."""
    return build()


@pytest.fixture(scope="session")
def hostlib(plugin_build: BuildResult) -> ctypes.CDLL:
    from plugins import hostref

    return hostref.library(plugin_build.hostref)


@pytest.fixture(scope="session")
def cuda_device() -> Any:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (gpu tests run where one is present; `make test` deselects them)")
    return torch.device("cuda")


@dataclass
class CollectingLogger:
    """A TensorRT(-RTX) ILogger that keeps every message."""

    trt_logger: Any
    messages: list[tuple[Any, str]]

    def errors(self) -> list[str]:
        severity = type(self.trt_logger).Severity
        return [m for s, m in self.messages if s in (severity.ERROR, severity.INTERNAL_ERROR)]


@pytest.fixture(scope="session")
def trt() -> Any:
    return pytest.importorskip("tensorrt_rtx")


@pytest.fixture()
def logger(trt: Any) -> Iterator[CollectingLogger]:
    messages: list[tuple[Any, str]] = []

    class _Logger(trt.ILogger):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            messages.append((severity, msg))

    yield CollectingLogger(_Logger(), messages)
