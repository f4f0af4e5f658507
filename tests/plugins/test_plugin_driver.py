"""The plugin library driven through its IPluginV3 interfaces by a C++ program that plays TensorRT, with a
logger finder of each TensorRT layout (told apart by RTTI, or by the library version without RTTI)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from plugins.builder import PLUGIN_DIR, BuildResult

CPP = Path(__file__).resolve().parent / "cpp"
CUDA_INCLUDE = "/usr/local/cuda/include"


def compile_cpp(args: list[str]) -> None:
    result = subprocess.run(
        ["g++", "-std=c++17", "-O1", "-Wall", *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("driver")
    binary = out / "plugin_driver"
    compile_cpp(
        [f"-I{PLUGIN_DIR}", f"-I{CUDA_INCLUDE}", str(CPP / "plugin_driver.cpp"), "-o", str(binary), "-ldl"]
    )
    for version in (101600, 110100):
        name = out / f"libnvinfer.so.{version // 10000}"
        compile_cpp(
            [
                f"-I{PLUGIN_DIR}",
                f"-I{CUDA_INCLUDE}",
                "-shared",
                "-fPIC",
                "-fno-rtti",
                "-fvisibility=hidden",
                f"-DFAKE_VERSION={version}",
                str(CPP / "fake_tensorrt.cpp"),
                "-o",
                str(name),
            ]
        )
    return binary


@pytest.mark.parametrize("mode", ["versioned", "legacy", "fake:10", "fake:11", "none"])
def test_driver(driver: Path, plugin_build: BuildResult, mode: str) -> None:
    if mode.startswith("fake:"):
        mode = f"fake:{driver.parent / ('libnvinfer.so.' + mode[5:])}"
    result = subprocess.run(
        [str(driver), str(plugin_build.library), mode], capture_output=True, text=True, check=False
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout and result.stdout.rstrip().endswith("PASSED (0 failed)")
    if mode == "none":  # no finder: the errors still reach the user, on stderr
        assert "[pem plugins] PEM plugin ModulatedDeformConv2d (layer 'dcn_bad')" in result.stderr
