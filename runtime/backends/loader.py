"""Choose and open a backend: TensorRT for engines, ONNX Runtime for ONNX graphs, and the fallback.

With neither an engine nor an ONNX file, the artefacts under runs/ are chosen by lineage
(pem_rt/lineage.py): the reference graph, and an engine built from it when this machine can run one. A
``grpc://`` address runs the model on a Triton Inference Server instead (runtime/backends/triton_backend.py).
Whenever TensorRT cannot run here (no GPU, no TensorRT, no cuda-python) and ``backend`` is ``auto``, one
line says why and ONNX Runtime runs instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pem_rt.errors import PemError
from runtime.backends.base import Backend, BackendUnavailable

BACKENDS = ("auto", "tensorrt", "onnxruntime")
EXPORT_COMMAND = "pem export --size HxW"


def tensorrt_unavailable() -> str | None:
    """Why TensorRT cannot run here, or None when it can (GPU, cuda-python and TensorRT present)."""
    from pem_rt.trt import load_tensorrt
    from runtime.backends.cuda_runtime import probe_gpu

    try:
        load_tensorrt("auto")
    except PemError:
        return "no TensorRT installed"
    try:
        probe_gpu()
    except BackendUnavailable as e:
        return str(e)
    return None


@dataclass(frozen=True)
class BackendOptions:
    """How a model is run. Args:
    backend: auto (TensorRT for engines, ONNX Runtime where TensorRT cannot run), tensorrt or onnxruntime.
    provider: ONNX Runtime execution provider: auto, cpu or cuda.
    plugins: TensorRT plugin library for engines that do not embed it.
    cuda_graph: replay CUDA graphs with TensorRT.
    threads: ONNX Runtime intra-op threads (0 = one per core).
    """

    backend: str = "auto"
    provider: str = "auto"
    plugins: Path | None = None
    cuda_graph: bool = True
    threads: int = 0


def open_backend(
    engine: Path | None = None,
    onnx: Path | None = None,
    options: BackendOptions = BackendOptions(),
    log: Callable[[str], None] = print,
    triton: str | None = None,
) -> Backend:
    """Open the model for inference (see the module docstring for the rules); ``triton``
    (grpc://HOST:PORT/MODEL) sends frames to a Triton Inference Server instead."""
    if triton is not None:
        if engine is not None or onnx is not None:
            raise PemError("pass --triton, --engine or --onnx, only one of them")
        from runtime.backends.triton_backend import TritonBackend

        return TritonBackend(triton)
    _check_choice(engine, onnx, options.backend)
    if engine is None and onnx is None:
        engine, onnx = _default_model(options.backend, log)
    if engine is not None:
        return _open_engine(engine, options, log)
    assert onnx is not None
    return _open_onnx(onnx, options)


def _check_choice(engine: Path | None, onnx: Path | None, backend: str) -> None:
    if backend not in BACKENDS:
        raise PemError(f"unknown --backend {backend}; choose {', '.join(BACKENDS)}")
    if engine is not None and onnx is not None:
        raise PemError("pass --engine or --onnx, not both")
    if engine is not None and backend == "onnxruntime":
        raise PemError("--backend onnxruntime runs ONNX graphs: pass --onnx MODEL.onnx instead of --engine")
    if onnx is not None and backend == "tensorrt":
        raise PemError("--backend tensorrt runs engines: pass --engine (build one with `pem build-engine`)")


def _default_model(backend: str, log: Callable[[str], None]) -> tuple[Path | None, Path | None]:
    """(engine, None) or (None, reference graph) by lineage: an engine made from the reference graph when
    TensorRT runs here, else the reference graph itself."""
    from pem_rt.lineage import engines_of, pick_engine, pick_reference

    reason = tensorrt_unavailable() if backend != "onnxruntime" else "--backend onnxruntime"
    reference = pick_reference("--onnx", log)
    if reason is None:
        found = pick_engine(reference, engines_of(reference), log)
        if found is not None:
            return found, None
        reason = f"no engine built from {reference.name} under runs/"
    if backend == "tensorrt":
        raise PemError(f"--backend tensorrt: {reason}; run `pem build-engine --onnx {reference}`")
    if backend == "auto":
        log(f"{reason}: using ONNX Runtime on the reference graph")
    return None, reference


def _open_onnx(onnx: Path, options: BackendOptions) -> Backend:
    from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    if Path(onnx).name.endswith(".trt.onnx"):
        raise PemError(
            f"{onnx} is the TensorRT graph with plugin ops; ONNX Runtime runs the reference graph "
            f"({str(onnx)[: -len('.trt.onnx')]}.onnx) or build an engine with `pem build-engine`"
        )
    return OnnxRuntimeBackend(onnx, options.provider, options.threads)


def _open_engine(engine: Path, options: BackendOptions, log: Callable[[str], None]) -> Backend:
    """TensorRT; where it cannot run and ``backend`` is auto, ONNX Runtime on the engine's own ONNX."""
    from runtime.backends.tensorrt_backend import TensorRTBackend

    try:
        return TensorRTBackend(engine, plugins=options.plugins, cuda_graph=options.cuda_graph)
    except BackendUnavailable as e:
        if options.backend == "tensorrt":
            raise PemError(f"cannot run engine {engine}: {e}") from None
        return _engine_fallback(engine, e, options, log)


def _engine_fallback(
    engine: Path, why: BackendUnavailable, options: BackendOptions, log: Callable[[str], None]
) -> Backend:
    from pem_rt.engine_meta import read_sidecar
    from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from runtime.backends.tensorrt_backend import sibling_onnx

    sidecar = read_sidecar(engine)
    fallback = sibling_onnx(engine, sidecar.onnx_sha256)
    if fallback is None:
        raise PemError(
            f"cannot run engine {engine} here ({why}); pass --onnx MODEL.onnx to use ONNX Runtime"
        ) from None
    log(f"{why}: cannot run {engine.name}, using ONNX Runtime on {fallback}")
    ort = OnnxRuntimeBackend(fallback, options.provider, options.threads)
    got, want = ort.meta, sidecar.model
    if (got.name, got.task, got.input_height, got.input_width) != (
        want.name,
        want.task,
        want.input_height,
        want.input_width,
    ):
        raise PemError(
            f"{fallback} is not the model of {engine} ({got.name} {got.task} "
            f"{got.input_height}x{got.input_width}); pass --onnx explicitly"
        )
    return ort
