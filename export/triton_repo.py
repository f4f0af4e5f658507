"""`pem triton-repo MODEL --repo DIR` (or `python export/triton_repo.py`): a Triton Inference Server model
repository for a PEM engine (platform ``tensorrt_plan``) or deployable ONNX graph (``onnxruntime_onnx``).

Examples:
    pem triton-repo runs/x/m_semantic_512x1024_dynamic.onnx --repo models --max-batch 8
    pem triton-repo runs/x/m.fp16.native.trt10.13.0.engine --repo models --name pem_city

Writes (atomically, one folder per model):
    DIR/NAME/config.pbtxt         I/O names, dtypes and dims from the model, max_batch_size, dynamic
                                  batching, the instance group and the model metadata (pem.* parameters)
    DIR/NAME/VERSION/model.plan   the engine (or model.onnx)
    DIR/NAME/libpem_plugins.so    engines with plugins: our plugin library, which the server's TensorRT
                                  backend opens (--backend-config=tensorrt,plugins=...) and which then
                                  registers its creators itself
    DIR/NAME/README.md            the server and client command lines

The config is checked by parsing it with the ModelConfig protobuf that tritonclient ships, and compared
with the model's inputs and outputs. Triton's TensorRT backend runs classic TensorRT engines built with its
own TensorRT version; TensorRT-RTX engines do not load there (serve the ONNX graph, or build the engine
with `pem build-engine` inside the matching TensorRT container).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pem_rt.command import run_command
from pem_rt.errors import PemError
from pem_rt.files import process_alive, umask
from pem_rt.killpoints import reach
from pem_rt.model_meta import ModelMeta

PLATFORMS = {"tensorrt_plan": "model.plan", "onnxruntime_onnx": "model.onnx"}
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
TRITON_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "int8": "TYPE_INT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
}
PLUGIN_FILE = "libpem_plugins.so"
DEFAULT_MAX_BATCH = 8
DEFAULT_QUEUE_DELAY_US = 2000


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # numpy dtype name
    dims: tuple[int, ...]  # without the batch dimension; -1 = dynamic


@dataclass(frozen=True)
class ServedModel:
    """What a Triton config says about one model."""

    source: Path
    platform: str
    meta: ModelMeta
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    max_batch: int
    preferred_batch: tuple[int, ...]
    plugin_sha256: str = ""  # engines: the plugin library they were built with
    trt_version: str = ""  # engines: the TensorRT the server must have


def describe_onnx(path: Path, max_batch: int) -> ServedModel:
    """A dynamic-batch deployable ONNX graph (`pem export --dynamic-batch`), served up to ``max_batch``."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and others for files that are not ONNX
        raise PemError(
            f"{path} is not an ONNX model ({type(e).__name__}); export one with `pem export`"
        ) from None
    meta = ModelMeta.from_onnx(path, "model")
    inputs = tuple(_onnx_tensor(v) for v in graph.graph.input)
    outputs = tuple(_onnx_tensor(v) for v in graph.graph.output)
    if meta.batch != 0:
        raise PemError(
            f"{path} has a static batch of {meta.batch}; Triton batches requests: export with "
            "`pem export --dynamic-batch`"
        )
    if max_batch < 1:
        raise PemError(f"--max-batch {max_batch}: must be at least 1")
    preferred = tuple(sorted({b for b in (max(1, max_batch // 2), max_batch) if b > 1}))
    return ServedModel(path, "onnxruntime_onnx", meta, inputs, outputs, max_batch, preferred)


def _onnx_tensor(value: Any) -> Tensor:
    import onnx

    t = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
    return Tensor(value.name, dtype, dims[1:])


def describe_engine(path: Path, max_batch: int | None) -> ServedModel:
    """An engine with a batch optimisation profile (`pem build-engine --batch 1,4,8`), from its sidecar."""
    from pem_rt.engine_meta import read_sidecar

    sidecar = read_sidecar(path)
    if sidecar.flavour != "tensorrt":
        raise PemError(
            f"{path} is a {sidecar.flavour} engine; Triton's tensorrt_plan backend loads classic TensorRT "
            "engines: build one with `pem build-engine` in the TensorRT container matching your Triton "
            "release, or serve the ONNX graph"
        )
    if sidecar.batch_profile is None:
        raise PemError(
            f"{path} has no batch profile (static batch {sidecar.inputs[0].shape[0]}); Triton batches "
            "requests: rebuild from a `pem export --dynamic-batch` graph with "
            "`pem build-engine --batch 1,4,8`"
        )
    lo, opt, hi = sidecar.batch_profile
    if lo != 1:
        raise PemError(
            f"{path}: its batch profile starts at {lo}; Triton sends batches of 1 too: rebuild with "
            f"`pem build-engine --batch 1,{opt},{hi}`"
        )
    if max_batch is not None and not 1 <= max_batch <= hi:
        raise PemError(f"--max-batch {max_batch}: this engine's profile takes 1 to {hi} frames")
    top = max_batch or hi
    inputs = tuple(Tensor(t.name, t.dtype, tuple(t.shape[1:])) for t in sidecar.inputs)
    outputs = tuple(Tensor(t.name, t.dtype, tuple(t.shape[1:])) for t in sidecar.outputs)
    preferred = tuple(sorted({b for b in (opt, top) if 1 < b <= top}))
    return ServedModel(
        path,
        "tensorrt_plan",
        sidecar.model,
        inputs,
        outputs,
        top,
        preferred,
        sidecar.plugin_sha256,
        sidecar.trt_version,
    )


def describe(model: Path, platform: str, max_batch: int | None) -> ServedModel:
    """The model's Triton description; ``platform`` 'auto' follows the file (engine or ONNX)."""
    if platform not in ("auto", *PLATFORMS):
        raise PemError(f"unknown --platform {platform}; choose auto, {', '.join(PLATFORMS)}")
    if not model.is_file():
        raise PemError(
            f"{model}: no such model file; pass an .engine (pem build-engine) or .onnx (pem export)"
        )
    if model.name.endswith(".trt.onnx"):
        raise PemError(
            f"{model} is the TensorRT graph with plugin ops; serve its engine (tensorrt_plan) or the "
            "reference ONNX graph (onnxruntime_onnx)"
        )
    kind = {".engine": "tensorrt_plan", ".plan": "tensorrt_plan", ".onnx": "onnxruntime_onnx"}.get(
        model.suffix
    )
    if kind is None:
        raise PemError(f"{model}: neither an .engine/.plan nor an .onnx file")
    if platform not in ("auto", kind):
        raise PemError(f"--platform {platform} does not serve {model.suffix} files; it needs {kind}")
    if kind == "tensorrt_plan":
        return describe_engine(model, max_batch)
    return describe_onnx(model, DEFAULT_MAX_BATCH if max_batch is None else max_batch)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor_block(t: Tensor) -> str:
    if t.dtype not in TRITON_TYPES:
        raise PemError(f"tensor {t.name} has dtype {t.dtype}, which this exporter does not map to Triton")
    dims = ", ".join(str(d) for d in t.dims)
    fields = f"name: {_quote(t.name)}\n    data_type: {TRITON_TYPES[t.dtype]}\n    dims: [ {dims} ]"
    return f"  {{\n    {fields}\n  }}"


def config_text(
    model: ServedModel, name: str, kind: str = "gpu", instances: int = 1, queue_delay_us: int = 2000
) -> str:
    """config.pbtxt (protobuf text format of Triton's ModelConfig)."""
    if kind not in KINDS:
        raise PemError(f"unknown --instance-kind {kind}; choose {', '.join(KINDS)}")
    if kind == "cpu" and model.platform == "tensorrt_plan":
        raise PemError("--instance-kind cpu: TensorRT engines run on GPUs only")
    params = model.meta.to_props()
    if model.plugin_sha256:
        params["pem.plugin_library"] = PLUGIN_FILE
        params["pem.plugin_sha256"] = model.plugin_sha256
        params["pem.tensorrt_version"] = model.trt_version
    preferred = ", ".join(str(b) for b in model.preferred_batch)
    lines = [
        f"name: {_quote(name)}",
        f"platform: {_quote(model.platform)}",
        f"max_batch_size: {model.max_batch}",
        "input [",
        ",\n".join(_tensor_block(t) for t in model.inputs),
        "]",
        "output [",
        ",\n".join(_tensor_block(t) for t in model.outputs),
        "]",
        "dynamic_batching {",
        *([f"  preferred_batch_size: [ {preferred} ]"] if preferred else []),
        f"  max_queue_delay_microseconds: {queue_delay_us}",
        "}",
        f"instance_group [ {{ count: {instances} kind: {KINDS[kind]} }} ]",
    ]
    for key, value in sorted(params.items()):
        lines.append(f"parameters {{ key: {_quote(key)} value {{ string_value: {_quote(value)} }} }}")
    return "\n".join(lines) + "\n"


def parse_config(text: str, where: str) -> Any:
    """Parse config.pbtxt with tritonclient's ModelConfig protobuf (what the server parses it with)."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise PemError("checking a Triton config needs tritonclient: pip install 'pem-rt[triton]'") from None
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise PemError(f"{where} is not a valid Triton ModelConfig: {e}") from None
    return config


def check_config(config: Any, model: ServedModel, where: str) -> None:
    """The parsed config must declare exactly the model's I/O, batch and platform."""
    from tritonclient.grpc import model_config_pb2

    def tensors(items: Any) -> list[tuple[str, str, tuple[int, ...]]]:
        return [(t.name, model_config_pb2.DataType.Name(t.data_type), tuple(t.dims)) for t in items]

    def wanted(items: tuple[Tensor, ...]) -> list[tuple[str, str, tuple[int, ...]]]:
        return [(t.name, TRITON_TYPES[t.dtype], t.dims) for t in items]

    problems = []
    if config.platform != model.platform:
        problems.append(f"platform {config.platform}, the model needs {model.platform}")
    if config.max_batch_size != model.max_batch:
        problems.append(f"max_batch_size {config.max_batch_size}, expected {model.max_batch}")
    if tensors(config.input) != wanted(model.inputs):
        problems.append(f"inputs {tensors(config.input)} != the model's {wanted(model.inputs)}")
    if tensors(config.output) != wanted(model.outputs):
        problems.append(f"outputs {tensors(config.output)} != the model's {wanted(model.outputs)}")
    if problems:
        raise PemError(f"{where} does not match {model.source}: {'; '.join(problems)}")


def readme_text(model: ServedModel, name: str, repo: Path) -> str:
    """How to serve the repository and talk to it (written beside config.pbtxt).

    Engines with plugins: Triton's TensorRT backend does not let engines load the plugin library embedded
    in them, and never calls its getCreators(); it dlopens the libraries named in its ``plugins`` backend
    config after loading TensorRT, and the library registers its creators on load."""
    library = f"/models/{name}/{PLUGIN_FILE}"
    plugins = f" --backend-config=tensorrt,plugins={library}" if model.plugin_sha256 else ""
    preload = (
        f"The plugin library registers itself with the server's TensorRT when it is opened, so "
        f"`-e LD_PRELOAD={library}` works as well. An engine built without plugins (`pem build-engine "
        "--dcn native --prototype-selection graph`, classic TensorRT >= 10.1) needs neither.\n\n"
        if model.plugin_sha256
        else ""
    )
    release = (
        f"a Triton release built on TensorRT {model.trt_version} (the engine's version)"
        if model.trt_version
        else "a Triton release whose ONNX Runtime backend is 1.31 or newer (DeformConv)"
    )
    h, w = model.meta.input_height, model.meta.input_width
    return (
        f"# {name}: PEM {model.meta.name} {model.meta.task} {h}x{w} ({model.platform})\n\n"
        f"Written by `pem triton-repo {model.source}`. Serve with {release}:\n\n"
        f"    docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v {repo.resolve()}:/models"
        " \\\n        nvcr.io/nvidia/tritonserver:<yy.mm>-py3 "
        f"tritonserver --model-repository=/models{plugins}\n\n"
        f"{preload}"
        f"Then stream to it (frames batched by the server, up to {model.max_batch} per call):\n\n"
        f"    pem stream --triton grpc://localhost:8001/{name} --source video.mp4 --headless "
        "--record out.mp4\n\n"
        f"Input `image`: uint8 BGR [N, {h}, {w}, 3]; outputs: {', '.join(t.name for t in model.outputs)}.\n"
    )


@dataclass(frozen=True)
class Serving:
    """How Triton serves the model: model ``version`` folder, instance ``kind`` (gpu or cpu) and count,
    the dynamic batcher's ``queue_delay_us``."""

    version: int = 1
    kind: str = "gpu"
    instances: int = 1
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US


def write_repo(
    model: ServedModel,
    repo: Path,
    name: str,
    serving: Serving = Serving(),
    plugins: Path | None = None,
    force: bool = False,
) -> Path:
    """Write ``repo/name`` (built in a temporary folder and renamed into place); returns that folder."""
    version, kind, instances, queue_delay_us = (
        serving.version,
        serving.kind,
        serving.instances,
        serving.queue_delay_us,
    )
    if version < 1:
        raise PemError(f"--version {version}: Triton model versions start at 1")
    if instances < 1:
        raise PemError(f"--instances {instances}: must be at least 1")
    if not name or "/" in name or name.startswith("."):
        raise PemError(f"--name {name!r}: use a plain folder name, e.g. pem_cityscapes")
    target = repo / name
    if target.exists() and not force:
        raise PemError(f"{target} exists; pass --force to replace it, or choose another --name")
    text = config_text(model, name, kind, instances, queue_delay_us)
    check_config(parse_config(text, f"{target}/config.pbtxt"), model, f"{target}/config.pbtxt")
    library = _plugin_library(model, plugins) if model.plugin_sha256 else None

    repo.mkdir(parents=True, exist_ok=True)
    recover_repo(repo, name)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}-", suffix=".staging", dir=repo))
    try:
        (staging / str(version)).mkdir()
        shutil.copyfile(model.source, staging / str(version) / PLATFORMS[model.platform])
        if library is not None:
            shutil.copyfile(library, staging / PLUGIN_FILE)
        (staging / "config.pbtxt").write_text(text)
        (staging / "README.md").write_text(readme_text(model, name, repo))
        for folder in (staging, staging / str(version)):
            folder.chmod(0o777 & ~umask())
        reach(f"triton-repo-staged:{name}")
        if target.exists() and _exchange(staging, target):
            reach(f"triton-repo-swapping:{name}")  # staging now holds the old folder, removed below
        elif target.exists():
            old = target.with_name(f".{name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            reach(f"triton-repo-swapping:{name}")
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def recover_repo(repo: Path, name: str) -> None:
    """Undo what a killed run left: its staging folders, and a model folder moved aside but not replaced
    (put back, so what existed before is there again)."""
    for staging in repo.glob(f".{name}.*.staging"):
        pid = staging.name[len(name) + 2 :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)
    old, target = repo / f".{name}.old", repo / name
    if old.is_dir() and not target.exists():
        os.replace(old, target)
    elif old.exists():
        shutil.rmtree(old, ignore_errors=True)


def _plugin_library(model: ServedModel, plugins: Path | None) -> Path:
    """The plugin library the engine was built with (checked by SHA-256)."""
    from pem_rt.engine_meta import sha256_file

    if plugins is None:
        import plugins as plugin_package

        plugins = plugin_package.default_library()
        if not plugins.is_file():
            raise PemError(f"no plugin library at {plugins}: build it with `make plugins` or pass --plugins")
    elif not plugins.is_file():
        raise PemError(f"--plugins {plugins} does not exist; build it with `make plugins`")
    if sha256_file(plugins) != model.plugin_sha256:
        raise PemError(
            f"--plugins {plugins} is not the library {model.source.name} was built with (SHA-256 differs); "
            "pass the one from its build, or rebuild the engine"
        )
    return plugins


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pem triton-repo",
        description="Write a Triton Inference Server model repository for a PEM engine or ONNX graph.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2] if __doc__ else None,
    )
    p.add_argument("model", type=Path, help="an .engine with its sidecar (pem build-engine --batch) or .onnx")
    p.add_argument(
        "--repo", type=Path, default=Path("models"), help="model repository folder (default models)"
    )
    p.add_argument("--name", help="model name in the repository (default: from the model's metadata)")
    p.add_argument("--version", type=int, default=1, help="model version folder (default 1)")
    p.add_argument(
        "--platform",
        default="auto",
        help="auto (by file: .engine -> tensorrt_plan, .onnx -> onnxruntime_onnx), tensorrt_plan or "
        "onnxruntime_onnx",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        help=f"max_batch_size (default: the engine profile's max; ONNX {DEFAULT_MAX_BATCH})",
    )
    p.add_argument(
        "--queue-delay-us",
        type=int,
        default=DEFAULT_QUEUE_DELAY_US,
        help="dynamic batching: most microseconds a request waits for others "
        f"(default {DEFAULT_QUEUE_DELAY_US})",
    )
    p.add_argument("--instances", type=int, default=1, help="model instances (default 1)")
    p.add_argument("--instance-kind", default="gpu", help="gpu (default) or cpu (ONNX only)")
    p.add_argument("--plugins", type=Path, help="engines: the plugin library (default build/plugins)")
    p.add_argument("--force", action="store_true", help="replace an existing model folder")
    return p


def default_name(meta: ModelMeta) -> str:
    return f"pem_{meta.name}_{meta.task}".replace("-", "_")


def _run(args: argparse.Namespace) -> int:
    from pem_rt.paths import check_output_dir

    check_output_dir(args.repo, "--repo")
    model = describe(args.model, args.platform, args.max_batch)
    name = args.name or default_name(model.meta)
    folder = write_repo(
        model,
        args.repo,
        name,
        Serving(args.version, args.instance_kind, args.instances, args.queue_delay_us),
        args.plugins,
        args.force,
    )
    print(
        f"wrote {folder} ({model.platform}, max_batch_size {model.max_batch}); serve it as "
        f"{folder / 'README.md'} says"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("triton-repo", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
