"""Choose and open a backend: TensorRT for engines, ONNX Runtime for ONNX graphs, and the fallback.

With neither an engine nor an ONNX file, the artefacts under runs/ are chosen by lineage
(pem_rt/lineage.py): the reference graph, and an engine built from it when this machine can run one. A
``grpc://`` address runs the model on a Triton Inference Server instead (runtime/backends/triton_backend.py).
Whenever TensorRT cannot run here (no GPU, no TensorRT, no cuda-python) and ``backend`` is ``auto``, one
line says why and ONNX Runtime runs instead.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _is_reference_onnx(p: Path) -> bool:
    return not p.name.endswith(".trt.onnx")


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


def open_backend(
    engine: Path | None = None,
    onnx: Path | None = None,
    backend: str = "auto",
    provider: str = "auto",
    plugins: Path | None = None,
    cuda_graph: bool = True,
    threads: int = 0,
    log: Callable[[str], None] = print,
    triton: str | None = None,
) -> Backend:
    """Open the model for inference (see the module docstring for the rules); ``triton``
    (grpc://HOST:PORT/MODEL) sends frames to a Triton Inference Server instead."""
    from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    if triton is not None:
        if engine is not None or onnx is not None:
            raise PemError("pass --triton, --engine or --onnx, only one of them")
        from runtime.backends.triton_backend import TritonBackend

        return TritonBackend(triton)

    if backend not in BACKENDS:
        raise PemError(f"unknown --backend {backend}; choose {', '.join(BACKENDS)}")
    if engine is not None and onnx is not None:
        raise PemError("pass --engine or --onnx, not both")
    if engine is not None and backend == "onnxruntime":
        raise PemError("--backend onnxruntime runs ONNX graphs: pass --onnx MODEL.onnx instead of --engine")
    if onnx is not None and backend == "tensorrt":
        raise PemError("--backend tensorrt runs engines: pass --engine (build one with `pem build-engine`)")

    if engine is None and onnx is None:
        engine, onnx = _default_model(backend, log)

    if engine is not None:
        from runtime.backends.tensorrt_backend import TensorRTBackend, sibling_onnx

        try:
            return TensorRTBackend(engine, plugins=plugins, cuda_graph=cuda_graph)
        except BackendUnavailable as e:
            if backend == "tensorrt":
                raise PemError(f"cannot run engine {engine}: {e}") from None
            from pem_rt.engine_meta import read_sidecar

            fallback = sibling_onnx(engine, read_sidecar(engine).onnx_sha256)
            if fallback is None:
                raise PemError(
                    f"cannot run engine {engine} here ({e}); pass --onnx MODEL.onnx to use ONNX Runtime"
                ) from None
            log(f"{e}: cannot run {engine.name}, using ONNX Runtime on {fallback}")
            ort = OnnxRuntimeBackend(fallback, provider, threads)
            expected = read_sidecar(engine).model
            mismatch = None
            if (ort.meta.name, ort.meta.task, ort.meta.input_height, ort.meta.input_width) != (
                expected.name,
                expected.task,
                expected.input_height,
                expected.input_width,
            ):
                mismatch = (
                    f"{fallback} is not the model of {engine} ({ort.meta.name} {ort.meta.task} "
                    f"{ort.meta.input_height}x{ort.meta.input_width}); pass --onnx explicitly"
                )
        if mismatch:
            raise PemError(mismatch)
        return ort
    assert onnx is not None
    if Path(onnx).name.endswith(".trt.onnx"):
        raise PemError(
            f"{onnx} is the TensorRT graph with plugin ops; ONNX Runtime runs the reference graph "
            f"({str(onnx)[: -len('.trt.onnx')]}.onnx) or build an engine with `pem build-engine`"
        )
    return OnnxRuntimeBackend(onnx, provider, threads)
