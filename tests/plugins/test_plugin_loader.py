"""plugins.load(): registers the library with TensorRT-RTX and fails with one clear line otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import plugins
from pem_rt.errors import PemError
from plugins.builder import PLUGIN_DIR, REPO_ROOT, BuildResult


def load_in_fresh_process(library: Path) -> str:
    """plugins.load(tensorrt_rtx, library) in a new process (the plugin registry is process-wide);
    returns what it printed: the library path, or the PemError message."""
    code = textwrap.dedent(
        f"""
        import tensorrt_rtx, plugins
        from pem_rt.errors import PemError
        try:
            print(plugins.load(tensorrt_rtx, {str(library)!r}))
        except PemError as e:
            print("PemError:", e)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return result.stdout.strip()


def test_loads_in_a_fresh_process(plugin_build: BuildResult) -> None:
    assert load_in_fresh_process(plugin_build.library) == str(plugin_build.library)


def test_missing_library_names_the_fix(trt: Any, tmp_path: Path) -> None:
    with pytest.raises(PemError) as error:
        plugins.load(trt, tmp_path / "libpem_plugins.so")
    message = str(error.value)
    assert "\n" not in message and "not found" in message and "make plugins" in message


def test_library_that_does_not_load(tmp_path: Path) -> None:
    junk = tmp_path / "libpem_plugins.so"
    junk.write_bytes(b"not an ELF file, but long enough to be read as one " * 40)
    message = load_in_fresh_process(junk)
    assert message.startswith("PemError: tensorrt_rtx could not load plugin library")
    assert "invalid ELF header" in message and "make plugins" in message and "\n" not in message


def compile_stub(out: Path, *defines: str) -> Path:
    source = Path(__file__).resolve().parent / "cpp" / "one_creator.cpp"
    cmd = ["g++", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden", f"-I{PLUGIN_DIR}"]
    cmd += ["-I/usr/local/cuda/include", *defines, str(source), "-o", str(out)]
    subprocess.run(cmd, check=True)
    return out


def test_missing_creator_is_named(tmp_path: Path) -> None:
    stub = compile_stub(tmp_path / "libone_creator.so")
    message = load_in_fresh_process(stub)
    assert message.startswith(f"PemError: plugin library {stub} loaded but has no creator PrototypeSelection")
    assert "namespace pem, version 1" in message and "make plugins" in message


def test_missing_entry_point_is_named(tmp_path: Path) -> None:
    stub = compile_stub(tmp_path / "libno_finder.so", "-DPEM_TEST_NO_LOGGER_FINDER")
    message = load_in_fresh_process(stub)
    assert message.startswith("PemError: tensorrt_rtx could not load plugin library")
    assert "it does not export setLoggerFinder" in message


def test_embed_needs_the_library(trt: Any, tmp_path: Path) -> None:
    config = trt.Builder(trt.Logger()).create_builder_config()
    with pytest.raises(PemError, match="not found"):
        plugins.embed_in_engine(config, tmp_path / "missing.so")
