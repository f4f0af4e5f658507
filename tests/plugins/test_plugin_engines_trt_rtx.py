"""TensorRT-RTX: load the plugin library, parse ONNX graphs with both plugin nodes and build real engines
ahead of time for SM86 and SM89 on this CPU-only machine; bad attributes and dtypes fail the build with
our message in TensorRT's log, and no exception crosses into TensorRT (the process lives on)."""

from __future__ import annotations

import ctypes
import re
from typing import Any

import numpy as np
import pytest
from onnx import ModelProto, TensorProto, helper, numpy_helper

import plugins
from plugins import onnx_ops
from plugins.builder import BuildResult

CIN, COUT, TOKENS_C, QUERIES, HEADS = 8, 16, 32, 10, 4
# name -> (dims with symbolic B/H/W/N, min, opt, max)
INPUTS: dict[str, tuple[list[int | str], tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    "x": (["B", CIN, "H", "W"], (1, CIN, 8, 8), (1, CIN, 16, 16), (2, CIN, 32, 32)),
    "offset": (["B", 18, "H", "W"], (1, 18, 8, 8), (1, 18, 16, 16), (2, 18, 32, 32)),
    "mask": (["B", 9, "H", "W"], (1, 9, 8, 8), (1, 9, 16, 16), (2, 9, 32, 32)),
    "features": (["B", "N", TOKENS_C], (1, 16, TOKENS_C), (1, 64, TOKENS_C), (2, 256, TOKENS_C)),
    "queries": (
        ["B", QUERIES, TOKENS_C],
        (1, QUERIES, TOKENS_C),
        (1, QUERIES, TOKENS_C),
        (2, QUERIES, TOKENS_C),
    ),
    "mask_logits": (["B", QUERIES, "N"], (1, QUERIES, 16), (1, QUERIES, 64), (2, QUERIES, 256)),
}


def make_model(
    compute: int = TensorProto.FLOAT,
    *,
    dcn_attrs: dict[str, Any] | None = None,
    heads: int | None = HEADS,
    bias: bool = True,
    weight_type: int | None = None,
    offset_channels: int = 18,
    fp32_logits: bool = False,
) -> ModelProto:
    """fp32 graph I/O; the plugin nodes compute in `compute` (Cast nodes around them, strongly typed)."""
    np_type = helper.tensor_dtype_to_np_dtype(compute)
    inputs, nodes, names = [], [], {}
    for name, (dims, *_) in INPUTS.items():
        dims = [offset_channels if (name == "offset" and d == 18) else d for d in dims]
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        names[name] = name
        if compute != TensorProto.FLOAT and not (fp32_logits and name == "mask_logits"):
            nodes.append(helper.make_node("Cast", [name], [f"{name}_cast"], to=compute))
            names[name] = f"{name}_cast"
    w_type = helper.tensor_dtype_to_np_dtype(weight_type) if weight_type is not None else np_type
    initializers = [numpy_helper.from_array(np.random.randn(COUT, CIN, 3, 3).astype(w_type), "weight")]
    dcn_inputs = [names["x"], names["offset"], names["mask"], "weight"]
    if bias:
        initializers.append(numpy_helper.from_array(np.random.randn(COUT).astype(w_type), "bias"))
        dcn_inputs.append("bias")
    attrs = {
        "stride": 1,
        "padding": 1,
        "dilation": 1,
        "groups": 1,
        "deformable_groups": 1,
        **(dcn_attrs or {}),
    }
    nodes.append(onnx_ops.deform_conv_node(dcn_inputs, "y_plugin", name="dcn0", **attrs))
    ps = onnx_ops.prototype_selection_node(
        [names["features"], names["queries"], names["mask_logits"]], "p_plugin", name="ps0", heads=heads or 1
    )
    if heads is None:
        del ps.attribute[[a.name for a in ps.attribute].index("heads")]
    nodes.append(ps)
    for out in ("y", "p"):
        nodes.append(helper.make_node("Cast", [f"{out}_plugin"], [out], to=TensorProto.FLOAT))
    graph = helper.make_graph(
        nodes,
        "pem_plugins",
        inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "p")],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), onnx_ops.opset_import()])


def build(
    trt: Any, logger: Any, model: ModelProto, embed: BuildResult | None = None
) -> tuple[Any, bytes | None]:
    """Parse and build for SM86 + SM89; returns (network, serialised engine or None)."""
    builder = trt.Builder(logger.trt_logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger.trt_logger)
    if not parser.parse(model.SerializeToString()):
        logger.messages += [(None, str(parser.get_error(i))) for i in range(parser.num_errors)]
        return network, None
    config = builder.create_builder_config()
    config.num_compute_capabilities = 2
    config.set_compute_capability(trt.ComputeCapability.SM86, 0)
    config.set_compute_capability(trt.ComputeCapability.SM89, 1)
    profile = builder.create_optimization_profile()
    for name, (_, lo, opt, hi) in INPUTS.items():
        if name == "offset" and network.get_input(1).shape[1] != 18:
            lo, opt, hi = ((s[0], network.get_input(1).shape[1], *s[2:]) for s in (lo, opt, hi))
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    if embed is not None:
        plugins.embed_in_engine(config, embed.library)
    engine = builder.build_serialized_network(network, config)
    return network, None if engine is None else bytes(engine)


def network_summary(network: Any) -> list[str]:
    lines = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        dtypes = ",".join(str(layer.get_output(j).dtype).split(".")[-1] for j in range(layer.num_outputs))
        lines.append(f"{layer.name:<18} {str(layer.type).split('.')[-1]:<10} -> {dtypes}")
    return lines


def engine_plugin_layers(engine: bytes) -> dict[str, dict[str, Any]]:
    """The plugin layers of a serialised TensorRT-RTX engine, read from the graph description it embeds
    (deserialising needs a GPU, so the engine inspector is not available here)."""
    layers = {}
    for m in re.finditer(rb'custom_layer=\{ name="([^"]+)" output=\{([^}]*)\} input=\{([^}]*)\}', engine):
        name = m.group(1)
        layers[name.decode()] = {
            "inputs": re.findall(r'"([^"]+)"', m.group(3).decode()),
            "plugin_type": re.search(rb'name="' + re.escape(name) + rb'_pluginType"', engine) is not None,
            "plugin_fields": re.search(rb'name="' + re.escape(name) + rb'_PluginFieldCollection"', engine)
            is not None,
        }
    return layers


@pytest.fixture(scope="module")
def loaded(trt: Any, plugin_build: BuildResult) -> BuildResult:
    assert plugins.load(trt, plugin_build.library) == plugin_build.library
    return plugin_build


def test_load_registers_both_creators(trt: Any, loaded: BuildResult) -> None:
    registry = trt.get_plugin_registry()
    for name in plugins.CREATOR_NAMES:
        creator = registry.get_creator(name, plugins.PLUGIN_VERSION, plugins.PLUGIN_NAMESPACE)
        assert creator is not None and creator.interface_info.kind == "PLUGIN CREATOR_V3ONE"
    fields = {f.name: f.size for f in registry.get_creator("ModulatedDeformConv2d", "1", "pem").field_names}
    assert fields == {"stride": 2, "padding": 2, "dilation": 2, "groups": 1, "deformable_groups": 1}
    assert plugins.load(trt, loaded.library) == loaded.library  # idempotent


def test_tensorrt_logger_layout_detected(trt: Any, loaded: BuildResult) -> None:
    """TensorRT-RTX 1.7 passes a versioned ILoggerFinder (same .so instance as TensorRT's dlopen)."""
    lib = ctypes.CDLL(str(loaded.library))
    lib.pem_plugins_logger_abi.restype = ctypes.c_int32
    assert lib.pem_plugins_logger_abi() == 1


@pytest.mark.parametrize("embed", [False, True], ids=["plain", "library-embedded"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "fp16-fp32-logits"])
def test_engine_for_sm86_and_sm89(
    trt: Any, logger: Any, loaded: BuildResult, precision: str, embed: bool
) -> None:
    compute = TensorProto.FLOAT16 if precision.startswith("fp16") else TensorProto.FLOAT
    model = make_model(compute, fp32_logits=precision.endswith("fp32-logits"))
    network, engine = build(trt, logger, model, loaded if embed else None)
    assert engine is not None, logger.errors()
    summary = network_summary(network)
    layers = engine_plugin_layers(engine)
    print(f"\n{precision} engine for SM86+SM89: {len(engine)} bytes, library embedded: {embed}")
    print("\n".join(summary))
    print(f"plugin layers in the engine: {layers}")
    plugin_rows = [row for row in summary if "PLUGIN_V3" in row]
    expected_dtype = "HALF" if precision.startswith("fp16") else "FLOAT"
    assert [row.split()[0] for row in plugin_rows] == ["dcn0", "ps0"]
    assert all(row.endswith(expected_dtype) for row in plugin_rows)
    assert set(layers) == {"dcn0", "ps0"}
    assert all(info["plugin_type"] and info["plugin_fields"] for info in layers.values())
    assert len(layers["dcn0"]["inputs"]) == 5 and len(layers["ps0"]["inputs"]) == 3
    for name in plugins.CREATOR_NAMES:
        assert name.encode() in engine
    # plugins_to_serialize carries the whole .so (its symbol table included) inside the engine
    assert (b"pem_prototype_selection_workspace_size" in engine) == embed


def assert_rejected(trt: Any, logger: Any, model: ModelProto, message: str) -> None:
    _, engine = build(trt, logger, model)
    assert engine is None
    ours = [m for m in logger.errors() if m.startswith("PEM plugin")]
    assert ours, logger.errors()
    print(f"\nTensorRT log: {ours[0]}")
    assert re.search(message, ours[0]), ours


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        (
            {"stride": [0, 1]},
            r"ModulatedDeformConv2d \(layer 'dcn0'\): attribute 'stride' must be 2 positive",
        ),
        ({"padding": [-1, 0]}, r"attribute 'padding' must be 2 non-negative integers, got \[-1, 0\]"),
        ({"dilation": [1, 0]}, r"attribute 'dilation' must be 2 positive integers"),
        ({"groups": 0}, r"attribute 'groups' must be >= 1, got 0"),
        ({"groups": 3}, r"input channels 8 must be divisible by groups \(3\)"),
        ({"deformable_groups": 3}, r"divisible by groups \(1\) and deformable_groups \(3\)"),
    ],
)
def test_bad_deform_conv_attributes_fail_the_build(
    trt: Any, logger: Any, loaded: BuildResult, attrs: dict[str, Any], message: str
) -> None:
    assert_rejected(trt, logger, make_model(dcn_attrs=attrs), message)


def test_stride_with_three_values_fails(trt: Any, logger: Any, loaded: BuildResult) -> None:
    model = make_model()
    dcn = next(n for n in model.graph.node if n.op_type == "ModulatedDeformConv2d")
    stride = next(a for a in dcn.attribute if a.name == "stride")
    stride.ints.append(1)
    assert_rejected(trt, logger, model, r"attribute 'stride' must hold 2 integers, got \[1, 1, 1\]")


def test_missing_heads_fails(trt: Any, logger: Any, loaded: BuildResult) -> None:
    assert_rejected(
        trt,
        logger,
        make_model(heads=None),
        r"PrototypeSelection \(layer 'ps0'\): missing required attribute 'heads'",
    )


def test_heads_must_divide_channels(trt: Any, logger: Any, loaded: BuildResult) -> None:
    assert_rejected(trt, logger, make_model(heads=5), r"channels 32 must be divisible by heads \(5\)")


def test_wrong_offset_channels_fail(trt: Any, logger: Any, loaded: BuildResult) -> None:
    assert_rejected(
        trt,
        logger,
        make_model(offset_channels=16),
        r"offset channels must be 2 \* deformable_groups \* kh \* kw",
    )


@pytest.mark.parametrize(
    ("compute", "weight_type", "message"),
    [
        (
            TensorProto.BFLOAT16,
            None,
            r"ModulatedDeformConv2d \(layer 'dcn0'\): input 'x' is BF16; supported types",
        ),
        (TensorProto.INT32, None, r"input 'x' is INT32"),
        (TensorProto.FLOAT16, TensorProto.FLOAT, r"input 'weight' is FLOAT but 'x' is HALF"),
    ],
    ids=["bf16", "int32", "mixed"],
)
def test_unsupported_dtypes_fail(
    trt: Any, logger: Any, loaded: BuildResult, compute: int, weight_type: int | None, message: str
) -> None:
    assert_rejected(trt, logger, make_model(compute, weight_type=weight_type), message)
