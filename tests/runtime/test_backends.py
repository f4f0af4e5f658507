"""Backends: ONNX Runtime checks, engine/sidecar refusals, the no-GPU fallback, and the TensorRT backend's
buffer plumbing (pinned buffers, async copies, CUDA graph capture and replay) against a stand-in CUDA
runtime and TensorRT that compute on the host. The real GPU run is the `gpu`-marked test at the end."""

from __future__ import annotations

import ctypes
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pem_rt.engine_meta import EngineSidecar, TensorInfo, write_sidecar
from pem_rt.errors import PemError
from pem_rt.model_meta import ModelMeta
from pem_rt.trt import TensorRT
from runtime.backends import BackendUnavailable, cuda_runtime, open_backend, tensorrt_backend
from runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from runtime.segmenter import Segmenter

from .conftest import RunStream, assert_one_error_line, stream_env


def meta_of(path: Path) -> ModelMeta:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return ModelMeta.from_props(dict(session.get_modelmeta().custom_metadata_map), str(path))


def make_engine(folder: Path, meta: ModelMeta, flavour: str, version: str, **changes: Any) -> Path:
    """A stand-in engine file with a sidecar as export/build_engine.py writes it."""
    engine = folder / f"m_semantic_64x128.fp16.sm86.{version}.engine"
    engine.write_bytes(b"not a real engine")
    h, w = meta.input_height, meta.input_width
    fields: dict[str, Any] = dict(
        model=meta,
        precision="fp16",
        flavour=flavour,
        trt_version=version,
        targets=("sm86", "sm89"),
        plugin_sha256="",
        inputs=(TensorInfo("image", "uint8", (1, h, w, 3)),),
        outputs=(TensorInfo("labels", "uint8", (1, h, w)),),
        onnx_sha256="",
        build_command="pem build-engine --onnx m_semantic_64x128.trt.onnx --fp16",
    )
    fields.update(changes)
    write_sidecar(engine, EngineSidecar(**fields))
    return engine


def no_gpu() -> bool:
    try:
        cuda_runtime.probe_gpu()
    except BackendUnavailable:
        return True
    return False


# ONNX Runtime -----------------------------------------------------------------------------------------
def test_onnxruntime_backend_matches_a_plain_session(semantic_onnx: Path) -> None:
    backend = OnnxRuntimeBackend(semantic_onnx, "cpu")
    frame = np.random.default_rng(0).integers(0, 256, (1, 64, 128, 3), dtype=np.uint8)
    want = ort.InferenceSession(str(semantic_onnx), providers=["CPUExecutionProvider"]).run(
        None, {"image": frame}
    )
    np.testing.assert_array_equal(backend.infer(frame)["labels"], want[0])
    assert backend.meta.name == "cityscapes-tiny" and "CPUExecutionProvider" in backend.name


def test_onnxruntime_refusals(semantic_onnx: Path, tmp_path: Path) -> None:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(PemError, match="--provider cuda: this onnxruntime has only"):
            OnnxRuntimeBackend(semantic_onnx, "cuda")
    plain = onnx.load(str(semantic_onnx))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(PemError, match="no PEM-RT metadata"):
        OnnxRuntimeBackend(tmp_path / "plain.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(PemError, match="ONNX Runtime cannot load"):
        OnnxRuntimeBackend(tmp_path / "junk.onnx")
    shutil.copy(semantic_onnx, tmp_path / "m.trt.onnx")
    with pytest.raises(PemError, match="TensorRT graph with plugin ops"):
        open_backend(onnx=tmp_path / "m.trt.onnx")


def test_wrong_input_size_in_the_metadata_is_refused(semantic_onnx: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(semantic_onnx))
    for p in proto.metadata_props:
        if p.key == "pem.input_height":
            p.value = "96"
    onnx.save(proto, str(tmp_path / "lying.onnx"))
    with pytest.raises(PemError, match=r"expected image uint8 \[N, 96, 128, 3\]"):
        OnnxRuntimeBackend(tmp_path / "lying.onnx")


# engines: sidecar checks and the fallback, on this (GPU-less) machine ----------------------------------
def test_engine_without_sidecar(semantic_onnx: Path, tmp_path: Path) -> None:
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"x")
    with pytest.raises(PemError, match=r"has no sidecar x\.engine\.json; rebuild it"):
        open_backend(engine=engine)


def test_engine_sidecar_mismatch_names_the_rebuild_command(
    run_stream: RunStream, semantic_onnx: Path, tmp_path: Path
) -> None:
    trt = pytest.importorskip(
        "tensorrt_rtx", reason="needs TensorRT-RTX (the trt-rtx extra) to compare versions"
    )
    meta = meta_of(semantic_onnx)
    engine = make_engine(tmp_path, meta, "tensorrt_rtx", "0.9.0")
    run = run_stream("--engine", engine, "--source", "synthetic:64x128", "--headless", "--frames", "1")
    assert_one_error_line(
        run, f"built with TensorRT 0.9.0, this machine has {trt.__version__}", "pem build-engine"
    )
    small = make_engine(
        tmp_path,
        meta,
        "tensorrt_rtx",
        trt.__version__,
        inputs=(TensorInfo("image", "uint8", (1, 32, 64, 3)),),
    )
    run = run_stream("--engine", small, "--source", "synthetic:64x128", "--headless", "--frames", "1")
    assert_one_error_line(run, "[N, 64, 128, 3]", "not a deployable PEM graph")


@pytest.mark.skipif(not no_gpu(), reason="this machine has a GPU: the fallback is not taken")
def test_no_gpu_says_so_in_one_line_and_uses_onnxruntime(
    run_stream: RunStream, semantic_onnx: Path, tmp_path: Path
) -> None:
    version = "10.9.0"
    try:
        import tensorrt_rtx

        flavour, version = "tensorrt_rtx", tensorrt_rtx.__version__
    except ImportError:
        flavour = "tensorrt"
    meta = meta_of(semantic_onnx)
    engine = make_engine(tmp_path, meta, flavour, version)
    run = run_stream("--engine", engine, "--source", "synthetic:64x128", "--headless", "--frames", "1")
    assert_one_error_line(run, "pass --onnx")  # no reference ONNX beside it
    shutil.copy(semantic_onnx, tmp_path / "m_semantic_64x128.onnx")
    run = run_stream("--engine", engine, "--source", "synthetic:64x128", "--headless", "--frames", "2")
    assert run.code == 0, run.output
    notes = [line for line in run.stdout.splitlines() if "using ONNX Runtime" in line]
    assert len(notes) == 1 and "m_semantic_64x128.onnx" in notes[0], run.stdout
    run = run_stream("--engine", engine, "--backend", "tensorrt", "--source", "synthetic", "--headless")
    assert_one_error_line(run, f"cannot run engine {engine}")


# the TensorRT backend's plumbing against stand-ins ----------------------------------------------------
class FakeCudart:
    """cuda.bindings.runtime's calls we use; "device" memory is host memory, copies run at sync/launch."""

    cudaStreamNonBlocking = 1
    cudaMemcpyKind = SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    cudaStreamCaptureMode = SimpleNamespace(cudaStreamCaptureModeThreadLocal=2)

    def __init__(self) -> None:
        self.memory: dict[int, Any] = {}
        self.pending: list[Any] = []  # enqueued work, run at synchronize (asynchronous like CUDA)
        self.capture: list[Any] | None = None
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def enqueue(self, op: Any) -> None:
        (self.capture if self.capture is not None else self.pending).append(op)

    def _alloc(self, n: int) -> tuple[int, int]:
        buf = (ctypes.c_uint8 * n)()
        self.memory[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    def cudaGetDeviceCount(self) -> tuple[int, int]:
        return 0, 1

    def cudaGetDeviceProperties(self, i: int) -> tuple[int, Any]:
        return 0, SimpleNamespace(name=b"Stand-in GPU", major=8, minor=6, totalGlobalMem=8 << 30)

    def cudaGetErrorString(self, err: int) -> tuple[int, bytes]:
        return 0, b"stand-in error"

    def cudaSetDevice(self, i: int) -> tuple[int]:
        return (0,)

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[int, int]:
        return 0, 7

    def cudaMallocHost(self, n: int) -> tuple[int, int]:
        self.calls.append("cudaMallocHost")
        return self._alloc(n)

    def cudaMalloc(self, n: int) -> tuple[int, int]:
        return self._alloc(n)

    def cudaMemcpyAsync(self, dst: int, src: int, n: int, kind: int, stream: int) -> tuple[int]:
        assert stream == 7
        self.calls.append(f"memcpy{kind}")
        self.enqueue(lambda: ctypes.memmove(dst, src, n))
        return (0,)

    def cudaStreamSynchronize(self, stream: int) -> tuple[int]:
        ops, self.pending = self.pending, []
        for op in ops:
            op()
        return (0,)

    def cudaStreamBeginCapture(self, stream: int, mode: int) -> tuple[int]:
        self.capture = []
        return (0,)

    def cudaStreamEndCapture(self, stream: int) -> tuple[int, list[Any]]:
        graph, self.capture = self.capture, None
        return 0, graph or []

    def cudaGraphInstantiate(self, graph: list[Any], flags: int) -> tuple[int, list[Any]]:
        return 0, list(graph)

    def cudaGraphLaunch(self, graph: list[Any], stream: int) -> tuple[int]:
        self.calls.append("cudaGraphLaunch")
        self.pending.extend(graph)
        return (0,)

    def __getattr__(self, name: str) -> Any:  # frees and destroys
        if name.startswith("cuda"):
            return lambda *a: (0,)
        raise AttributeError(name)


def fake_tensorrt(cuda: FakeCudart, shape: tuple[int, int]) -> Any:
    """A TensorRT module whose engine computes labels = blue channel // 16 on the host."""
    h, w = shape
    tensors = {"image": ((1, h, w, 3), np.uint8), "labels": ((1, h, w), np.uint8)}

    class Context:
        def __init__(self) -> None:
            self.addresses: dict[str, int] = {}

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            self.addresses[name] = ptr
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return tensors[name][0]

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            return True

        def execute_async_v3(self, stream: int) -> bool:
            src, dst = self.addresses["image"], self.addresses["labels"]

            def run() -> None:
                image = np.ctypeslib.as_array((ctypes.c_uint8 * (h * w * 3)).from_address(src)).reshape(
                    h, w, 3
                )
                out = np.ctypeslib.as_array((ctypes.c_uint8 * (h * w)).from_address(dst)).reshape(h, w)
                out[:] = image[:, :, 0] // 16

            cuda.enqueue(run)
            return True

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i: int) -> str:
            return list(tensors)[i]

        def get_tensor_mode(self, name: str) -> str:
            return "INPUT" if name == "image" else "OUTPUT"

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return tensors[name][0]

        def get_tensor_dtype(self, name: str) -> Any:
            return tensors[name][1]

        def create_execution_context(self) -> Context:
            return Context()

    class Runtime:
        def __init__(self, logger: Any) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine:
            return Engine()

    class Logger:
        WARNING, VERBOSE = 2, 4

        def __init__(self, level: int) -> None:
            pass

    return SimpleNamespace(
        __version__="10.99.0",
        Logger=Logger,
        Runtime=Runtime,
        TensorIOMode=SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT"),
        nptype=lambda dtype: dtype,
        get_plugin_registry=lambda: None,
    )


@pytest.mark.parametrize("graph", [True, False])
def test_tensorrt_backend_plumbing(
    semantic_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph: bool
) -> None:
    cuda = FakeCudart()
    module = fake_tensorrt(cuda, (64, 128))
    monkeypatch.setattr(cuda_runtime, "cudart", lambda: cuda)
    monkeypatch.setattr(tensorrt_backend, "cudart", lambda: cuda)
    monkeypatch.setattr(tensorrt_backend, "load_tensorrt", lambda flavour: TensorRT("tensorrt", module))
    engine = make_engine(tmp_path, meta_of(semantic_onnx), "tensorrt", "10.99.0")
    seg = Segmenter(engine, resize="letterbox", cuda_graph=graph)
    assert (
        seg.name.startswith("tensorrt 10.99.0 on Stand-in GPU (sm86") and ("CUDA graph" in seg.name) == graph
    )
    rng = np.random.default_rng(0)
    for _ in range(3):  # fresh data each frame: the graph copies the pinned buffer anew every launch
        frame = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
        result = seg(frame)
        np.testing.assert_array_equal(result.labels, frame[:, :, 0] // 16)
    big = rng.integers(0, 256, (128, 256, 3), dtype=np.uint8)
    assert seg(big).labels.shape == (128, 256)
    assert cuda.calls.count("cudaMallocHost") == 2  # pinned buffers made once, not per frame
    assert (cuda.calls.count("cudaGraphLaunch") == 4) == graph
    seg.close()


@pytest.mark.gpu
def test_tensorrt_engine_on_a_gpu(semantic_onnx: Path, tmp_path: Path) -> None:
    """On a GPU machine: build an FP32 engine of the reference graph with the installed TensorRT flavour, run
    it through the whole backend (pinned buffers, async copies, CUDA graph), compare with ONNX Runtime."""
    from pem_rt.trt import load_tensorrt

    trt = load_tensorrt("auto")
    gpu = cuda_runtime.probe_gpu()
    mod = trt.module
    logger = trt.logger()
    builder = mod.Builder(logger)
    strongly_typed = getattr(mod.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
    parser = mod.OnnxParser(network, logger)
    if not parser.parse(semantic_onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        pytest.skip(f"{trt.flavour} {trt.version} cannot parse the reference graph ({errors[:300]})")
    blob = builder.build_serialized_network(network, builder.create_builder_config())
    assert blob is not None, "engine build failed (see the TensorRT log)"
    engine = tmp_path / f"m_semantic_64x128.fp32.{gpu.compute_capability}.{trt.version}.engine"
    engine.write_bytes(bytes(blob))
    make_engine(tmp_path, meta_of(semantic_onnx), trt.flavour, trt.version, targets=(gpu.compute_capability,))
    sidecar = tmp_path / f"m_semantic_64x128.fp16.sm86.{trt.version}.engine.json"
    sidecar.rename(f"{engine}.json")
    rng = np.random.default_rng(0)
    for graph in (True, False):
        seg = Segmenter(engine, backend="tensorrt", cuda_graph=graph)
        ref = Segmenter(semantic_onnx, backend="onnxruntime", provider="cpu")
        for _ in range(3):
            frame = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)
            assert (seg(frame).labels == ref(frame).labels).mean() > 0.99
        seg.close()


def test_old_driver_is_refused_in_one_line_before_the_engine_is_opened(
    run_stream: RunStream, semantic_onnx: Path, tmp_path: Path
) -> None:
    """The driver the sidecar's plugin library needs, checked against a driver version the check reads
    from $PEM_CUDA_DRIVER_VERSION (this machine has none): refused before anything is deserialised."""
    trt = pytest.importorskip("tensorrt_rtx", reason="needs TensorRT-RTX to get past the version check")
    meta = meta_of(semantic_onnx)
    engine = make_engine(
        tmp_path, meta, "tensorrt_rtx", trt.__version__, plugin_sha256="ab" * 32, plugin_cuda_runtime=13000
    )
    args = ("--engine", engine, "--source", "synthetic:64x128", "--headless", "--frames", "1")
    old = run_stream(*args, env={**stream_env(), "PEM_CUDA_DRIVER_VERSION": "12.8"})
    line = assert_one_error_line(
        old, "built with CUDA 13.0: needs an NVIDIA driver R580", "supports CUDA 12.8"
    )
    assert "--cuda-root" in line
    new = run_stream(*args, env={**stream_env(), "PEM_CUDA_DRIVER_VERSION": "13.0"})
    assert "NVIDIA driver" not in new.output  # passes the check (then fails elsewhere: not a real engine)
