"""The plugin library build: one command, no TensorRT SDK needed, every architecture, cached, lean exports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pem_rt.driver import library_cuda_runtime
from pem_rt.errors import PemError
from plugins.builder import (
    DEFAULT_ARCHS,
    PLUGIN_DIR,
    BuildResult,
    build,
    build_key,
    cuda_architectures,
    default_archs,
    find_nvcc,
    source_files,
    toolkit_sms,
)

EXPECTED_EXPORTS = {
    "getCreators",
    "setLoggerFinder",
    "pem_modulated_deform_conv2d",
    "pem_prototype_selection",
    "pem_prototype_selection_workspace_size",
    "pem_plugins_logger_abi",
    "pem_plugins_registered_on_load",
    "pem_plugins_cuda_runtime_version",
}


def exported_symbols(path: Path) -> set[str]:
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True
    )
    return {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}


def test_builds_without_a_tensorrt_sdk(plugin_build: BuildResult) -> None:
    assert plugin_build.library.is_file() and plugin_build.hostref.is_file()
    if not os.environ.get("TENSORRT_ROOT"):
        assert plugin_build.tensorrt_include is None  # compiled against plugins/common/trt_abi


def test_exports_only_the_entry_points(plugin_build: BuildResult) -> None:
    assert exported_symbols(plugin_build.library) == EXPECTED_EXPORTS


def test_needs_no_cuda_or_tensorrt_shared_library(plugin_build: BuildResult) -> None:
    needed = subprocess.run(
        ["ldd", str(plugin_build.library)], capture_output=True, text=True, check=True
    ).stdout
    for name in ("libcudart", "libnvinfer", "libtensorrt", "libcublas"):
        assert name not in needed, needed


def test_carries_code_for_every_architecture(plugin_build: BuildResult) -> None:
    archs = cuda_architectures(plugin_build.library)
    print(f"SASS: {archs['sass']}  PTX: {archs['ptx']}")
    # B200/GB200 (100), B300 (103), Jetson Thor (110) and GB10 (121) included; nvcc 13 lists them all
    assert archs["sass"] == [75, 80, 86, 87, 89, 90, 100, 103, 110, 120, 121]
    assert archs["ptx"] == [121]  # JIT-compiled on GPUs newer than the list


def test_default_archs_follow_the_toolkit() -> None:
    nvcc = find_nvcc()
    listed = toolkit_sms(nvcc)
    assert {75, 86, 120} <= listed  # nvcc --list-gpu-code, read for real
    archs = default_archs(nvcc)
    assert archs == DEFAULT_ARCHS  # nvcc 13 has every SM we want
    parts = archs.split(";")
    assert all(p.endswith("-real") for p in parts[:-1]) and parts[-1] == "121"  # PTX for the newest only


def test_cuda_root_must_hold_nvcc(tmp_path: Path) -> None:
    with pytest.raises(PemError, match=r"--cuda-root .* has no bin/nvcc"):
        find_nvcc(tmp_path)
    assert find_nvcc(find_nvcc().parents[1]) == find_nvcc()


def test_library_records_its_cuda_runtime(plugin_build: BuildResult) -> None:
    version = library_cuda_runtime(plugin_build.library)  # read from the file, not loaded
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ctypes, sys; print(ctypes.CDLL(sys.argv[1]).pem_plugins_cuda_runtime_version())",
            str(plugin_build.library),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    nvcc = subprocess.run([str(find_nvcc()), "--version"], capture_output=True, text=True).stdout
    major, minor = re.search(r"release (\d+)\.(\d+)", nvcc).groups()  # type: ignore[union-attr]
    assert version == int(run.stdout) == int(major) * 1000 + int(minor) * 10


def test_second_build_is_a_cache_hit(plugin_build: BuildResult) -> None:
    start = time.monotonic()
    again = build()
    assert again.cached and again.key == plugin_build.key
    assert time.monotonic() - start < 10
    assert again.library.read_bytes() == plugin_build.library.read_bytes()


def test_cache_key_tracks_the_inputs() -> None:
    nvcc = find_nvcc()
    key = build_key(nvcc, DEFAULT_ARCHS, None)
    assert key == build_key(nvcc, DEFAULT_ARCHS, None)
    assert key != build_key(nvcc, "86-real", None)
    sources = {p.relative_to(PLUGIN_DIR).as_posix() for p in source_files()}
    assert {"CMakeLists.txt", "exports.map", "common/trt_abi/pem_trt_abi.h"} <= sources
    assert "prototype_selection/prototype_selection_math.cuh" in sources


def test_no_nvidia_header_in_the_repository() -> None:
    copyright_owner = " ".join(["NVIDIA", "CORPORATION"])  # spelled apart so this file does not match
    for path in PLUGIN_DIR.rglob("*"):
        if path.is_file() and path.suffix in (".h", ".cuh", ".cu", ".cpp", ".py", ".md", ".txt"):
            assert copyright_owner not in path.read_text(errors="replace"), path
