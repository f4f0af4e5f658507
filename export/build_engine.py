"""`python export/build_engine.py --fp16`: deployable ONNX -> TensorRT / TensorRT-RTX engine + JSON sidecar.

Strongly typed builds only (what TensorRT 10/11 and TensorRT-RTX share): FP32 as exported, FP16 by
converting the ONNX with ModelOpt AutoCast (export/precision.py), INT8 by explicit Q/DQ from calibration
(calibration/). Then graph surgery swaps in our plugins (export/surgery.py; which ones per flavour:
``--dcn``/``--prototype-selection``, export/engine_strategy.py), the plugin library is checked against this
machine's driver, loaded and embedded in the engine, and the engine + sidecar are written atomically as one
unit: the sidecar holds the engine's size and SHA-256 and is renamed into place first, so a kill between the
two renames leaves an old engine that its new sidecar refuses, never a pair that verifies but does not
belong together. Graphs without plugins can also be built version-compatible, hardware-compatible or for
the DLA.
`python export/build_engine.py inspect ENGINE` prints an engine's sidecar and layers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx
from tqdm import tqdm

from calibration.calibrate import CalibrationConfig
from calibration.cli_args import add_calibration_args, config_from_args
from calibration.frames import read_frames
from export.engine_strategy import (
    DCN_REQUESTS,
    HARDWARE_COMPAT,
    Portability,
    apply_portability,
    check_request,
    resolve_strategy,
)
from export.int8_budget import BudgetRequest, budget_props, calibrate_within_budget
from export.int8_calibrate import calibrate_for_tensorrt
from export.int8_eval import add_eval_args, held_out_from_args
from export.precision import convert_fp16
from export.qat_export import is_qat_graph
from export.surgery import (
    ALL_PLUGINS,
    PLUGIN_DOMAIN,
    SELECTION_CHOICES,
    PluginStrategy,
    describe_surgery,
    to_tensorrt_graph,
)
from pem_rt.command import run_command
from pem_rt.driver import check_driver, library_cuda_runtime
from pem_rt.engine_meta import (
    EngineSidecar,
    TensorInfo,
    read_sidecar,
    sha256_file,
    verify_engine,
    write_sidecar,
)
from pem_rt.errors import PemError
from pem_rt.files import atomic_path, atomic_write_bytes
from pem_rt.lineage import TENSORRT_GRAPH, derived, pick_reference, require_reference, stamp
from pem_rt.log import RepeatCounter, library_messages, native_output
from pem_rt.model_meta import ModelMeta
from pem_rt.onnx_props import read_props
from pem_rt.paths import check_output_dir, check_output_file
from pem_rt.trt import TensorRT, load_tensorrt, parse_targets

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class BuildOptions:
    precision: str
    targets: tuple[str, ...] = ()
    flavour: str = "auto"
    workspace_gib: float = 4.0
    timing_cache: Path | None = None
    batch: tuple[int, int, int] | None = None
    plugins: Path | None = None
    verbose: bool = False
    strategy: PluginStrategy = ALL_PLUGINS
    portability: Portability = field(default_factory=Portability)


class _Progress:
    """TensorRT's IProgressMonitor as one tqdm bar: the top-level phase's steps, the current sub-phase
    in the postfix (quiet when stdout is not a terminal)."""

    def __init__(self, trt: TensorRT) -> None:
        base = trt.module.IProgressMonitor

        class Monitor(base):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                base.__init__(self)
                self.bar: tqdm | None = None
                self.top: str | None = None

            def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
                if parent_phase is None:
                    self.top = phase_name
                    self.bar = tqdm(total=num_steps, desc=phase_name, leave=False, disable=None)
                elif self.bar is not None:
                    self.bar.set_postfix_str(phase_name)

            def step_complete(self, phase_name: str, step: int) -> bool:
                if phase_name == self.top and self.bar is not None:
                    self.bar.update(step + 1 - self.bar.n)
                return True

            def phase_finish(self, phase_name: str) -> None:
                if phase_name == self.top and self.bar is not None:
                    self.bar.close()
                    self.bar = None

        self.monitor = Monitor()


def _np_dtype(trt: TensorRT, dtype: Any) -> str:
    names = {
        "FLOAT": "float32",
        "HALF": "float16",
        "INT8": "int8",
        "INT32": "int32",
        "INT64": "int64",
        "UINT8": "uint8",
        "BOOL": "bool",
        "BF16": "bfloat16",
    }
    return names.get(str(dtype).split(".")[-1], str(dtype))


def _tensor_infos(trt: TensorRT, network: Any, inputs: bool) -> tuple[TensorInfo, ...]:
    count = network.num_inputs if inputs else network.num_outputs
    tensors = [network.get_input(i) if inputs else network.get_output(i) for i in range(count)]
    return tuple(TensorInfo(t.name, _np_dtype(trt, t.dtype), tuple(int(d) for d in t.shape)) for t in tensors)


def layer_summary(trt: TensorRT, network: Any) -> list[dict[str, str]]:
    """Name, type and output dtypes of every network layer (what the engine is built from)."""
    layers = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        dtypes = ",".join(
            sorted({_np_dtype(trt, layer.get_output(j).dtype) for j in range(layer.num_outputs)})
        )
        layers.append({"name": layer.name, "type": str(layer.type).split(".")[-1], "dtypes": dtypes})
    return layers


def engine_name(
    stem: str,
    precision: str,
    targets: tuple[str, ...],
    trt: TensorRT,
    strategy: PluginStrategy = ALL_PLUGINS,
) -> str:
    target = "-".join(targets) if targets else "native"
    flavour = "rtx" if trt.flavour == "tensorrt_rtx" else "trt"
    return f"{stem}{strategy.tag()}.{precision}.{target}.{flavour}{trt.version}.engine"


def build_engine(
    trt_onnx: Path,
    engine: Path,
    meta: ModelMeta,
    options: BuildOptions,
    command: str,
    source_onnx: Path,
    messages: RepeatCounter | None = None,
) -> EngineSidecar:
    """Build ``trt_onnx`` (a graph with the plugin nodes ``options.strategy`` asks for) into ``engine`` and
    its sidecar; TensorRT's messages go through ``messages`` (counted, pem_rt/log.py) when given, else
    TensorRT prints them."""
    import plugins

    trt = load_tensorrt(options.flavour)
    library = None if options.strategy.plugin_free else load_plugins(trt, options.plugins)
    logger = trt.logger(options.verbose, messages)
    builder = trt.module.Builder(logger)
    flags = 1 << int(trt.module.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.module.OnnxParser(network, logger)
    with native_output(messages, trt.name):
        parsed = parser.parse(trt_onnx.read_bytes(), str(trt_onnx))
    if not parsed:
        errors = "; ".join(str(parser.get_error(i)).splitlines()[0] for i in range(parser.num_errors))
        raise PemError(f"{trt.flavour} could not parse {trt_onnx}: {errors[:400]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.module.MemoryPoolType.WORKSPACE, int(options.workspace_gib * (1 << 30)))
    trt.set_targets(config, list(options.targets))
    apply_portability(trt, builder, config, options.portability)
    profile = _add_batch_profile(trt, builder, network, config, options.batch)
    cache = _load_timing_cache(config, options.timing_cache)
    if library is not None:
        plugins.embed_in_engine(config, library)
    config.progress_monitor = _Progress(trt).monitor
    start = time.perf_counter()
    with native_output(messages, trt.name):
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise PemError(
            f"{trt.flavour} failed to build an engine from {trt_onnx}; rerun with --verbose for its log"
        )
    if options.timing_cache is not None and cache is not None:
        atomic_write_bytes(options.timing_cache, bytes(cache.serialize()))
    data = bytes(serialized)
    layers = layer_summary(trt, network)
    excluded_groups, int8_budget = budget_props(read_props(trt_onnx))
    sidecar = EngineSidecar(
        model=meta,
        precision=options.precision,
        flavour=trt.flavour,
        trt_version=trt.version,
        targets=options.targets,
        plugin_sha256=sha256_file(library) if library is not None else "",
        inputs=_tensor_infos(trt, network, inputs=True),
        outputs=_tensor_infos(trt, network, inputs=False),
        onnx_sha256=sha256_file(source_onnx),
        build_command=command,
        layers=tuple(layers),
        batch_profile=profile,
        plugin_cuda_runtime=(library_cuda_runtime(library) or 0) if library is not None else 0,
        dcn=options.strategy.dcn,
        prototype_selection=options.strategy.prototype_selection,
        version_compatible=options.portability.version_compatible,
        hardware_compat=options.portability.hardware_compat,
        dla_core=options.portability.dla_core,
        postprocess=meta.postprocess,
        engine_size=len(data),
        engine_sha256=hashlib.sha256(data).hexdigest(),
        parent_sha256=sha256_file(trt_onnx),
        int8_excluded_groups=excluded_groups,
        int8_budget=int8_budget,
    )
    with atomic_path(engine) as tmp:  # the sidecar is renamed first, then the engine (see the docstring)
        tmp.write_bytes(data)
        write_sidecar(engine, sidecar)
    print(
        f"built {engine} ({engine.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - start:.0f} s: "
        f"{describe_layers(layers)}"
    )
    return sidecar


def load_plugins(trt: TensorRT, library: Path | None) -> Path:
    """Load our plugin library (building the default one if needed) and check its creators."""
    import plugins

    if library is not None and not library.is_file():
        raise PemError(f"--plugins {library} does not exist; build it with `make plugins`")
    path = library or plugins.default_library()
    if library is None and not path.is_file():
        print("building the plugin library (once; cached under build/plugins)")
        path = plugins.build().library
    check_plugin_driver(trt, path)
    return Path(plugins.load(trt.module, path))


def check_plugin_driver(trt: TensorRT, library: Path) -> None:
    """Classic TensorRT times plugins by running them while it builds: the driver must run the library.
    TensorRT-RTX builds without running them (ahead of time), so an old driver only gets a note: the
    engine's runtime will refuse it there."""
    try:
        check_driver(library_cuda_runtime(library), f"plugin library {library}")
    except PemError as e:
        if trt.flavour == "tensorrt":
            raise
        print(f"note: {e}")


def describe_layers(layers: Sequence[dict[str, str]]) -> str:
    plugins = Counter(layer["name"].rsplit("_", 1)[0] for layer in layers if "PLUGIN" in layer["type"])
    dtypes = Counter(d for layer in layers for d in layer["dtypes"].split(","))
    plugin_text = ", ".join(f"{n} {name}" for name, n in sorted(plugins.items())) or "no plugins"
    dtype_text = ", ".join(f"{n} {d}" for d, n in dtypes.most_common())
    return f"{len(layers)} layers ({plugin_text}; outputs: {dtype_text})"


def _add_batch_profile(
    trt: TensorRT, builder: Any, network: Any, config: Any, batch: tuple[int, int, int] | None
) -> tuple[int, int, int] | None:
    """The optimisation profile of a dynamic-batch graph (None for a static batch)."""
    image = network.get_input(0)
    shape = tuple(int(d) for d in image.shape)
    if shape[0] != -1:
        if batch is not None and batch != (shape[0],) * 3:
            raise PemError(
                f"--batch {','.join(map(str, batch))} needs a dynamic-batch export "
                f"(`pem export --dynamic-batch`); this graph has a static batch of {shape[0]}"
            )
        return None
    lo, opt, hi = batch or (1, 1, 1)
    profile = builder.create_optimization_profile()
    profile.set_shape(image.name, (lo, *shape[1:]), (opt, *shape[1:]), (hi, *shape[1:]))
    config.add_optimization_profile(profile)
    return lo, opt, hi


def _load_timing_cache(config: Any, path: Path | None) -> Any:
    if path is None:
        return None
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=True):
        print(f"timing cache {path} does not fit this builder: starting a new one")
    return cache


def parse_batch(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not min,opt,max (e.g. 1,4,8)") from None
    if not 1 <= lo <= opt <= hi:
        raise argparse.ArgumentTypeError(f"'{text}': need 1 <= min <= opt <= max")
    return lo, opt, hi


def prepare_graph(
    reference: Path,
    precision: str,
    calib: CalibrationConfig,
    strategy: PluginStrategy = ALL_PLUGINS,
    budget: BudgetRequest | None = None,
) -> tuple[Path, Path]:
    """(graph in the requested precision, its TensorRT graph with the plugin nodes ``strategy`` asks for).

    FP16 conversion checks value ranges on up to 16 of ``calib``'s frames; INT8 calibrates with ``calib``
    (cache default: ``<reference stem>.<method>.calib``), within ``budget`` when given (the fewest, most
    sensitive model parts kept out of INT8 until the measured mIoU drop fits).
    """
    meta = ModelMeta.from_onnx(reference)
    size = (meta.input_height, meta.input_width)
    if precision == "fp32":
        typed = reference
    elif precision == "fp16":
        typed = reference.with_suffix(".fp16.onnx")
        frames = read_frames(calib.data, size, min(calib.batches, 16))
        kept = convert_fp16(reference, typed, frames)
        print(f"wrote {typed} (FP16; {kept} nodes kept in FP32 where values exceed FP16's safe range)")
    else:
        typed = reference.with_suffix(".int8.onnx")
        calib = replace(calib, cache=calib.cache or reference.with_suffix(f".{calib.method}.calib"))
        if budget is not None:
            within = calibrate_within_budget(reference, typed, calib, budget)
            print(
                f"wrote {typed}: mIoU drop {within.measured.drop:.2f} points <= {budget.max_drop}, "
                f"model parts kept out of INT8: {', '.join(within.excluded) or 'none'}"
            )
        else:
            result = calibrate_for_tensorrt(reference, typed, calib)
            print(
                f"wrote {typed}: {result.report.quantized_nodes} nodes in INT8, "
                f"{len(result.report.excluded)} kept out"
            )
    return typed, write_tensorrt_graph(typed, strategy)


def write_tensorrt_graph(typed: Path, strategy: PluginStrategy) -> Path:
    """Graph surgery on ``typed`` (a graph in its final precision): ``<stem><tag>.trt.onnx`` beside it."""
    model = onnx.load(str(typed))
    trt_model, dcn, sel = to_tensorrt_graph(model, str(typed), strategy)
    stamp(trt_model, derived(typed, model, TENSORRT_GRAPH))
    trt_onnx = typed.with_name(f"{typed.stem}{strategy.tag()}.trt.onnx")
    with atomic_path(trt_onnx) as tmp:
        onnx.save(trt_model, tmp)
    print(f"wrote {trt_onnx} ({describe_surgery(strategy, dcn, sel)})")
    return trt_onnx


def _is_qat_graph(reference: Path, precision: str, args: argparse.Namespace) -> bool:
    """True for the Q/DQ graph `pem export` writes of a QAT checkpoint (built as it is, with --int8);
    anything else must be a reference graph."""
    if not is_qat_graph(read_props(reference)):
        require_reference(reference)
        return False
    if precision != "int8":
        raise PemError(f"--onnx {reference} is a Q/DQ INT8 graph (`pem train --qat`); build it with --int8")
    if args.max_miou_drop is not None:
        raise PemError(f"--onnx {reference} is already INT8 (QAT): --max-miou-drop applies to calibration")
    return True


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pem build-engine", description=__doc__.splitlines()[0].split(": ", 1)[1]
    )
    p.add_argument(
        "--onnx",
        type=Path,
        help="reference graph from `pem export` (default: the reference graph under runs/, by lineage)",
    )
    prec = p.add_mutually_exclusive_group()
    for name in PRECISIONS:
        prec.add_argument(
            f"--{name}",
            dest="precision",
            action="store_const",
            const=name,
            help=f"{name.upper()} engine" + (" (default)" if name == "fp16" else ""),
        )
    p.add_argument(
        "--target",
        default=None,
        metavar="SM[,SM...]",
        help="TensorRT-RTX: build ahead of time for these GPUs, e.g. sm86,sm89 (default: this GPU)",
    )
    p.add_argument(
        "--flavour",
        choices=("auto", "tensorrt", "tensorrt_rtx"),
        default="auto",
        help="auto: classic TensorRT when importable, else TensorRT-RTX",
    )
    p.add_argument(
        "--workspace", type=float, default=4.0, metavar="GiB", help="builder workspace (default 4)"
    )
    p.add_argument("--timing-cache", type=Path, default=None, help="reuse/update a timing cache file")
    p.add_argument(
        "--batch",
        type=parse_batch,
        default=None,
        metavar="MIN,OPT,MAX",
        help="batch profile for dynamic-batch exports, e.g. 1,4,8",
    )
    p.add_argument("--plugins", type=Path, default=None, help="plugin library (default: build/plugins/...)")
    p.add_argument(
        "--dcn",
        choices=DCN_REQUESTS,
        default="auto",
        help="deformable convs: our plugin, or ONNX DeformConv (native: classic TensorRT >= 10.1); "
        "auto (default): native where the parser has it, else plugin",
    )
    p.add_argument(
        "--prototype-selection",
        choices=SELECTION_CHOICES,
        default="plugin",
        help="PEM-CA prototype selection: our fused plugin (default) or the standard ONNX subgraph",
    )
    portable = p.add_argument_group(
        "engines without plugins (classic TensorRT; need --dcn native --prototype-selection graph)"
    )
    portable.add_argument(
        "--version-compatible", action="store_true", help="the engine also runs on later TensorRT versions"
    )
    portable.add_argument(
        "--hardware-compat",
        choices=HARDWARE_COMPAT,
        default="none",
        help="ampere+: one engine for every Ampere-or-newer GPU (default none: this GPU)",
    )
    portable.add_argument(
        "--dla-core",
        type=int,
        default=None,
        metavar="N",
        help="build for DLA core N (Jetson Orin; FP16/INT8)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="engine path (default: beside the ONNX, named "
        "<model>.<precision>.<target>.<trt-version>.engine)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="every message of TensorRT and ModelOpt as it comes (default: repeats counted, one line each)",
    )
    add_calibration_args(p)
    add_eval_args(p)
    return p


def _run(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Quiet unless --verbose: ModelOpt's and TensorRT's repeated messages end as one line each."""
    quiet = library_messages(args.verbose, "modelopt", "root", emit=lambda line: print(line, flush=True))
    with quiet as messages:
        _build(args, argv, messages)


def _build(args: argparse.Namespace, argv: Sequence[str], messages: RepeatCounter) -> None:
    trt = load_tensorrt(args.flavour)
    targets = tuple(parse_targets(args.target))
    if trt.ahead_of_time and not targets:
        targets = ("sm86",)
        print("no --target given: building for sm86 (RTX 30xx/A-series); name yours, e.g. --target sm89")
    precision = args.precision or "fp16"
    reference = args.onnx or pick_reference("--onnx")
    if not reference.is_file():
        raise PemError(f"--onnx {reference} does not exist; export one with `pem export --size HxW`")
    qat = _is_qat_graph(reference, precision, args)
    meta = ModelMeta.from_onnx(reference)
    if any(n.domain == PLUGIN_DOMAIN for n in onnx.load(str(reference), load_external_data=False).graph.node):
        raise PemError(f"--onnx {reference} already has plugin nodes; pass the graph `pem export` wrote")
    strategy = resolve_strategy(trt, args.dcn, args.prototype_selection)
    portability = Portability(args.version_compatible, args.hardware_compat, args.dla_core)
    check_request(trt, strategy, portability, precision)
    engine = args.out or reference.parent / engine_name(reference.stem, precision, targets, trt, strategy)
    check_output_file(engine, "--out", "model.engine")
    check_output_file(args.timing_cache, "--timing-cache", "timing.cache")
    check_output_file(args.calib_cache, "--calib-cache", "model.calib")
    check_output_dir(reference.parent, "--onnx's folder")
    if not strategy.plugin_free:
        load_plugins(trt, args.plugins)  # fail early, before minutes of conversion or calibration
    if precision == "int8" and args.calib_data is None and not qat:
        raise PemError("--int8 needs --calib-data: an image folder, a video, or 'skimage'")
    calib = config_from_args(args, default_data="skimage")
    budget = None
    if args.max_miou_drop is not None:
        if precision != "int8":
            raise PemError("--max-miou-drop is an INT8 accuracy budget; add --int8")
        budget = BudgetRequest(args.max_miou_drop, held_out_from_args(args))
    if qat:
        print(f"{reference} is a Q/DQ INT8 graph from `pem train --qat`: building it without calibration")
        trt_onnx = write_tensorrt_graph(reference, strategy)
    else:
        _, trt_onnx = prepare_graph(reference, precision, calib, strategy, budget)
    options = BuildOptions(
        precision,
        targets,
        trt.flavour,
        args.workspace,
        args.timing_cache,
        args.batch,
        args.plugins,
        args.verbose,
        strategy,
        portability,
    )
    command = "pem build-engine " + " ".join(shlex.quote(a) for a in argv)
    build_engine(trt_onnx, engine, meta, options, command, reference, messages)
    print(f"wrote {engine} and {engine.name}.json")


def inspect_engine(engine: Path) -> None:
    """Print the sidecar and the layers with their precisions: from TensorRT's engine inspector when this
    machine can deserialize the engine (a GPU it was built for), else from the network the sidecar
    recorded at build time (e.g. for an engine built ahead of time on a machine without a GPU)."""
    if not engine.is_file():
        raise PemError(f"engine {engine} does not exist; build one with `pem build-engine`")
    sidecar = read_sidecar(engine)
    verified = verify_engine(engine, sidecar)
    info = {k: v for k, v in sidecar.to_json().items() if k not in ("layers", "model")}
    print(json.dumps(info, indent=2))
    m = sidecar.model
    print(f"model: {m.name}, {m.task}, {m.input_height}x{m.input_width}, {len(m.classes)} classes")
    print(
        "engine matches its sidecar (size and SHA-256)"
        if verified
        else "engine not verified: its sidecar predates engine hashes"
    )
    inspected = _engine_inspector_layers(engine, sidecar.flavour)
    if inspected is not None:
        print("layers of the built engine (TensorRT engine inspector):")
        for layer in inspected:
            print(f"  {json.dumps(layer)[:200]}")
        return
    print("layers of the network the engine was built from (no GPU to deserialize the engine here):")
    print(f"{'layer':<60} {'type':<22} dtypes")
    for layer in sidecar.layers:
        print(f"{layer['name'][:60]:<60} {layer['type']:<22} {layer['dtypes']}")
    print(describe_layers(sidecar.layers))


def _engine_inspector_layers(engine: Path, flavour: str) -> list[Any] | None:
    """The engine inspector's per-layer JSON (fused layers, tactics, precisions), or None without a GPU."""
    from runtime.backends.loader import tensorrt_unavailable

    if tensorrt_unavailable() is not None:
        return None
    trt = load_tensorrt(flavour)
    runtime = trt.module.Runtime(trt.logger())
    runtime.engine_host_code_allowed = True  # the plugin library embedded in the engine
    cuda_engine = runtime.deserialize_cuda_engine(engine.read_bytes())
    if cuda_engine is None:
        return None
    inspector = cuda_engine.create_engine_inspector()
    fmt = trt.module.LayerInformationFormat.JSON
    return [json.loads(inspector.get_layer_information(i, fmt)) for i in range(cuda_engine.num_layers)]


def _inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pem build-engine inspect", description="print an engine's sidecar and layers"
    )
    p.add_argument("engine", type=Path)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["inspect"]:
        return run_command("inspect", _inspect_parser(), lambda a: inspect_engine(a.engine), args_list[1:])
    return run_command("build-engine", build_parser(), lambda a: _run(a, args_list), args_list)


if __name__ == "__main__":
    sys.exit(main())
