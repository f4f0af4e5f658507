"""Registration on load, for loaders that only dlopen the library (ctypes, polygraphy --plugins, trtexec
--plugins, Triton): the real library is loaded with ctypes in a fresh process beside TensorRT-RTX, in
either order, and the registry must hold both creators exactly once; the explicit path (plugins.load,
registry.load_library) keeps working with no duplicate-registration error, before or after."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugins.builder import REPO_ROOT, BuildResult

pytest.importorskip("tensorrt_rtx")

PRELUDE = textwrap.dedent(
    """
    import ctypes, os, sys, time
    lib = sys.argv[1]
    NAMES = ("ModulatedDeformConv2d", "PrototypeSelection")

    def found(trt):
        registry = trt.get_plugin_registry()
        return [registry.get_creator(n, "1", "pem") is not None for n in NAMES]

    def ours(trt):
        # creators in namespace pem: each must be registered once
        return sum(c.plugin_namespace == "pem" for c in trt.get_plugin_registry().all_creators)
    """
)


def run(body: str, library: Path) -> subprocess.CompletedProcess[str]:
    code = PRELUDE + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code, str(library)], capture_output=True, text=True, env=env, timeout=300
    )


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def no_registry_errors(result: subprocess.CompletedProcess[str]) -> None:
    text = result.stdout + result.stderr
    assert "already registered" not in text and "[E]" not in text and "Traceback" not in text, text[-2000:]


def test_ctypes_after_tensorrt_registers_both_creators(plugin_build: BuildResult) -> None:
    result = run(
        """
        import tensorrt_rtx as trt
        before = found(trt)
        handle = ctypes.CDLL(lib)
        print(before, found(trt), ours(trt), handle.pem_plugins_registered_on_load())
        """,
        plugin_build.library,
    )
    assert result.stdout.split("] ")[0] + "]" == "[False, False]"
    assert "[True, True] 2 1" in result.stdout, result.stdout
    no_registry_errors(result)


def test_ctypes_before_tensorrt_registers_when_tensorrt_loads(plugin_build: BuildResult) -> None:
    # polygraphy --plugins opens the library before it imports TensorRT
    result = run(
        """
        handle = ctypes.CDLL(lib)
        import tensorrt_rtx as trt
        deadline = time.monotonic() + 10  # the watcher polls every millisecond
        while not all(found(trt)) and time.monotonic() < deadline:
            time.sleep(0.01)
        print(found(trt), ours(trt), handle.pem_plugins_registered_on_load())
        """,
        plugin_build.library,
    )
    assert "[True, True] 2 1" in result.stdout, result.stdout + result.stderr
    no_registry_errors(result)


def test_dlclose_before_tensorrt_loads_leaves_the_watcher_running(plugin_build: BuildResult) -> None:
    """The watcher thread's code stays mapped (the library pins itself) when a loader closes the library."""
    result = run(
        """
        libc = ctypes.CDLL(None)
        libc.dlclose.argtypes = [ctypes.c_void_p]
        handle = ctypes.CDLL(lib)
        print(libc.dlclose(handle._handle))
        time.sleep(0.1)  # the watcher wakes every millisecond meanwhile
        import tensorrt_rtx as trt
        deadline = time.monotonic() + 10
        while not all(found(trt)) and time.monotonic() < deadline:
            time.sleep(0.01)
        print(found(trt), ours(trt))
        """,
        plugin_build.library,
    )
    assert result.returncode == 0 and "[True, True] 2" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("explicit", ["plugins.load", "load_library"])
def test_explicit_load_after_ctypes_is_not_disturbed(plugin_build: BuildResult, explicit: str) -> None:
    result = run(
        f"""
        import tensorrt_rtx as trt
        import plugins
        handle = ctypes.CDLL(lib)
        if {explicit!r} == "plugins.load":
            plugins.load(trt, lib)
            ok = True
        else:
            ok = trt.get_plugin_registry().load_library(lib) is not None
        print(ok, found(trt), ours(trt), handle.pem_plugins_registered_on_load())
        """,
        plugin_build.library,
    )
    # plugins.load finds both creators and loads nothing more; load_library takes them over from the
    # load-time registration (getCreators deregisters them first): either way registered once
    on_load = 1 if explicit == "plugins.load" else 0
    assert f"True [True, True] 2 {on_load}" in result.stdout, result.stdout + result.stderr
    no_registry_errors(result)


def test_ctypes_after_explicit_load_registers_nothing_more(plugin_build: BuildResult) -> None:
    result = run(
        """
        import tensorrt_rtx as trt
        import plugins
        plugins.load(trt, lib)
        handle = ctypes.CDLL(lib)
        print(found(trt), ours(trt), handle.pem_plugins_registered_on_load())
        registry = trt.get_plugin_registry()
        print(registry.load_library(lib) is None)  # a second explicit load: TensorRT's own rule
        """,
        plugin_build.library,
    )
    assert "[True, True] 2 0" in result.stdout, result.stdout + result.stderr


def test_without_tensorrt_nothing_is_registered_and_the_process_exits(plugin_build: BuildResult) -> None:
    result = run(
        """
        handle = ctypes.CDLL(lib)
        assert "tensorrt_rtx" not in sys.modules
        print(handle.pem_plugins_registered_on_load())
        """,
        plugin_build.library,
    )
    assert lines(result) == ["0"]


def test_polygraphy_run_builds_with_the_plugins(plugin_build: BuildResult, tmp_path: Path) -> None:
    """The README's recipe: `polygraphy run <graph> --trt --plugins libpem_plugins.so` (TensorRT-RTX needs
    POLYGRAPHY_USE_TENSORRT_RTX=1). The engine builds here; running it needs a GPU."""
    import onnx

    from tests.plugins.test_plugin_engines_trt_rtx import INPUTS, make_model

    graph = tmp_path / "plugins.onnx"
    onnx.save(make_model(), str(graph))
    shapes = []
    for flag, index in (("--trt-min-shapes", 1), ("--trt-opt-shapes", 2), ("--trt-max-shapes", 3)):
        shapes += [flag] + [f"{name}:{list(spec[index])}".replace(" ", "") for name, spec in INPUTS.items()]
    polygraphy = Path(sys.executable).with_name("polygraphy")
    result = subprocess.run(
        [str(polygraphy), "run", str(graph), "--trt", "--plugins", str(plugin_build.library), *shapes],
        capture_output=True,
        text=True,
        env={**os.environ, "POLYGRAPHY_USE_TENSORRT_RTX": "1"},
        timeout=600,
    )
    text = result.stdout + result.stderr
    assert "Plugin not found" not in text, text[-3000:]
    assert "Finished engine building" in text, text[-3000:]
