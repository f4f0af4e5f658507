"""The plugin strategy per flavour (--dcn, --prototype-selection) and the flags of plugin-free engines
(--version-compatible, --hardware-compat, --dla-core): every graph variant checked in ONNX Runtime against
the reference graph, every combination TensorRT-RTX accepts built for real, every refusal one line."""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.build_engine import check_plugin_driver, main
from export.engine_strategy import Portability, check_request, resolve_strategy
from export.surgery import PluginStrategy, to_tensorrt_graph
from pem_rt.driver import DRIVER_ENV
from pem_rt.engine_meta import read_sidecar
from pem_rt.errors import PemError
from pem_rt.trt import TensorRT

from .lower_plugins import lower_plugins
from .test_export_onnx import frames, run_onnx

Exported = Callable[..., tuple[object, Path]]
VARIANTS = [PluginStrategy(d, s) for d in ("plugin", "native") for s in ("plugin", "graph")]


def classic(version: str) -> TensorRT:
    """Classic TensorRT cannot be installed here: the decisions only read its flavour and version."""
    return TensorRT("tensorrt", types.SimpleNamespace(__version__=version))  # type: ignore[arg-type]


def rtx() -> TensorRT:
    import tensorrt_rtx

    return TensorRT("tensorrt_rtx", tensorrt_rtx)


@pytest.mark.parametrize("strategy", VARIANTS, ids=lambda s: f"{s.dcn}-{s.prototype_selection}")
def test_graph_variants_equal_the_reference_labels(exported: Exported, strategy: PluginStrategy) -> None:
    """Plugin-free parts run as they are; plugin nodes are lowered back to standard ops: 100 % agreement."""
    _, path = exported("cityscapes-tiny")
    graph, dcn, sel = to_tensorrt_graph(onnx.load(str(path)), str(path), strategy)
    ops = Counter(n.op_type for n in graph.graph.node)
    assert (dcn, sel) == (3, 3)
    assert ops["DeformConv"] == (3 if strategy.dcn == "native" else 0)
    assert ops["ModulatedDeformConv2d"] == (3 if strategy.dcn == "plugin" else 0)
    assert ops["PrototypeSelection"] == (3 if strategy.prototype_selection == "plugin" else 0)
    onnx.checker.check_model(graph)
    if strategy.plugin_free:
        assert not any(n.domain == "pem" for n in graph.graph.node)
        assert not any(o.domain == "pem" for o in graph.opset_import)
    runnable = graph if strategy.plugin_free else lower_plugins(graph)
    session = ort.InferenceSession(runnable.SerializeToString(), providers=["CPUExecutionProvider"])
    for seed in (3, 7):
        image = frames(1, (64, 128), seed=seed)
        got = session.run(["labels"], {"image": image})[0]
        want = run_onnx(path, image)["labels"]
        assert np.mean(got == want) == 1.0  # FP32: 100 % agreement with the reference graph


def test_auto_takes_native_deform_conv_only_where_the_parser_has_it() -> None:
    assert resolve_strategy(classic("10.13.0"), "auto", "plugin") == PluginStrategy("native", "plugin")
    assert resolve_strategy(classic("10.0.1"), "auto", "graph") == PluginStrategy("plugin", "graph")
    assert resolve_strategy(rtx(), "auto", "plugin") == PluginStrategy("plugin", "plugin")
    assert resolve_strategy(classic("11.1.0"), "plugin", "graph") == PluginStrategy("plugin", "graph")


def test_tensorrt_rtx_parser_has_no_deform_conv(exported: Exported) -> None:
    """Why --dcn native is refused on TensorRT-RTX: its parser rejects the reference graph's DeformConv."""
    import tensorrt_rtx as trt

    _, path = exported("cityscapes-tiny")
    logger = trt.Logger(trt.Logger.ERROR)
    network = trt.Builder(logger).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    graph, _, _ = to_tensorrt_graph(onnx.load(str(path)), str(path), PluginStrategy("native", "graph"))
    assert not parser.parse(graph.SerializeToString())
    assert "DeformConv" in str(parser.get_error(0))
    with pytest.raises(PemError, match="TensorRT-RTX's ONNX parser has no DeformConv"):
        resolve_strategy(rtx(), "native", "plugin")


@pytest.mark.parametrize(
    ("trt", "strategy", "portability", "precision", "want"),
    [
        ("rtx", "free", Portability(version_compatible=True), "fp16", "no version-compatible engines"),
        ("rtx", "free", Portability(hardware_compat="ampere+"), "fp16", "no hardware-compatibility levels"),
        ("rtx", "free", Portability(dla_core=0), "fp16", "TensorRT-RTX has no DLA"),
        (
            "classic",
            "plugins",
            Portability(version_compatible=True),
            "fp16",
            "needs an engine without plugins",
        ),
        (
            "classic",
            "plugins",
            Portability(dla_core=1),
            "int8",
            "--dla-core 1 needs an engine without plugins",
        ),
        ("classic", "free", Portability(dla_core=0), "fp32", "the DLA runs FP16 or INT8"),
    ],
)
def test_refusals_are_one_line(
    trt: str, strategy: str, portability: Portability, precision: str, want: str
) -> None:
    flavour = rtx() if trt == "rtx" else classic("10.13.0")
    chosen = PluginStrategy("native", "graph") if strategy == "free" else PluginStrategy()
    with pytest.raises(PemError, match=want) as info:
        check_request(flavour, chosen, portability, precision)
    assert "\n" not in str(info.value)


def test_classic_plugin_free_requests_pass() -> None:
    free = PluginStrategy("native", "graph")
    check_request(classic("10.13.0"), free, Portability(True, "ampere+", None), "fp16")
    check_request(classic("10.13.0"), free, Portability(dla_core=0), "int8")
    check_request(rtx(), PluginStrategy(), Portability(), "fp32")  # nothing asked: nothing refused


def _copy(path: Path, folder: Path) -> Path:
    dst = folder / path.name
    dst.write_bytes(path.read_bytes())
    return dst


@pytest.mark.parametrize("selection", ["plugin", "graph"])
def test_tensorrt_rtx_builds_every_combination_it_accepts(
    exported: Exported,
    plugin_library: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    selection: str,
) -> None:
    """TensorRT-RTX takes --dcn plugin (auto resolves to it) with either prototype selection. With an old
    driver (the version the check reads, set in the environment) the AOT build goes on with a note, and
    the runtime refuses the engine in one line before deserialising it."""
    if selection == "graph":
        monkeypatch.setenv(DRIVER_ENV, "12.8")
    _, path = exported("cityscapes-tiny", debug=False)
    onnx_path = _copy(path, tmp_path)
    args = ["--fp32", "--onnx", str(onnx_path), "--target", "sm86", "--plugins", str(plugin_library)]
    assert main([*args, "--dcn", "auto", "--prototype-selection", selection]) == 0
    out = capsys.readouterr().out
    [engine] = tmp_path.glob("*.engine")
    sidecar = read_sidecar(engine)
    assert (sidecar.dcn, sidecar.prototype_selection) == ("plugin", selection)
    assert not sidecar.version_compatible and sidecar.hardware_compat == "none" and sidecar.dla_core is None
    assert sidecar.plugin_cuda_runtime >= 12000 and sidecar.plugin_sha256
    types_ = Counter(layer["type"] for layer in sidecar.layers)
    assert types_["PLUGIN_V3"] == (6 if selection == "plugin" else 3)
    assert ("-sel_graph." in engine.name) == (selection == "graph")
    assert "3 pem_deform_conv" in out
    if selection == "graph":
        assert "note: plugin library" in out and "needs an NVIDIA driver R580" in out
        from runtime.backends.tensorrt_backend import TensorRTBackend

        with pytest.raises(PemError, match=r"needs an NVIDIA driver R580 .* supports CUDA 12\.8") as info:
            TensorRTBackend(engine)
        assert "\n" not in str(info.value)


def test_classic_build_refuses_an_old_driver_first(
    plugin_library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Classic TensorRT runs the plugins while it builds: refused before anything is built."""
    monkeypatch.setenv(DRIVER_ENV, "12080")
    with pytest.raises(
        PemError, match=r"plugin library .* built with CUDA 13\.\d: needs an NVIDIA driver R580"
    ):
        check_plugin_driver(classic("10.13.0"), plugin_library)
    monkeypatch.setenv(DRIVER_ENV, "13.0")
    check_plugin_driver(classic("10.13.0"), plugin_library)
    monkeypatch.setenv(DRIVER_ENV, "thirteen")
    with pytest.raises(PemError, match="PEM_CUDA_DRIVER_VERSION='thirteen': give a CUDA version"):
        check_plugin_driver(classic("10.13.0"), plugin_library)


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        (["--dcn", "native"], "--dcn native: TensorRT-RTX's ONNX parser has no DeformConv importer"),
        (["--version-compatible"], "--version-compatible: TensorRT-RTX builds no version-compatible engines"),
        (["--hardware-compat", "ampere+"], "--hardware-compat ampere+: TensorRT-RTX has no hardware-comp"),
        (["--dla-core", "0"], "--dla-core 0: TensorRT-RTX has no DLA"),
    ],
)
def test_build_engine_refuses_what_tensorrt_rtx_cannot_do(
    exported: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], want: str
) -> None:
    _, path = exported("cityscapes-tiny", debug=False)
    onnx_path = _copy(path, tmp_path)
    assert main(["--fp16", "--onnx", str(onnx_path), "--target", "sm86", *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and want in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [onnx_path.name]  # refused before any work
