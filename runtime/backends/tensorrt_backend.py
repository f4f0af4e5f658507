"""TensorRT backend (classic TensorRT 10+ or TensorRT-RTX): engine + sidecar -> labels on the GPU.

Before anything is deserialised the sidecar is read and checked against this machine (flavour, TensorRT
version, GPU compute capability, plugin library): a mismatch is one line with the rebuild command.
Per frame: the frame is copied into a pinned host buffer, then H2D copy, ``execute_async_v3`` and D2H
copies of the (small, integer) outputs are enqueued on one CUDA stream and waited for once. With classic
TensorRT that whole sequence is captured into a CUDA graph and replayed with a single launch;
TensorRT-RTX captures its own kernels (``IRuntimeConfig.cuda_graph_strategy``), the copies stay outside.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from pem_rt.engine_meta import EngineSidecar, check_compatible, read_sidecar, sha256_file
from pem_rt.errors import PemError
from pem_rt.model_meta import ModelMeta
from pem_rt.trt import TensorRT, load_tensorrt
from runtime.backends.base import BackendUnavailable, check_batch, check_input, check_outputs
from runtime.backends.cuda_runtime import CudaGraph, GpuInfo, HostDeviceBuffer, check, cudart, probe_gpu


def check_sidecar_io(engine: Path, sidecar: EngineSidecar) -> None:
    """The sidecar's I/O must be the deployable graph's, at its model's input size."""
    meta = sidecar.model
    rebuild = sidecar.build_command or "pem build-engine"
    if len(sidecar.inputs) != 1:
        raise PemError(
            f"engine {engine} has {len(sidecar.inputs)} inputs (expected image); rebuild: {rebuild}"
        )
    [inp] = sidecar.inputs
    check_input(engine, meta, inp.name, inp.dtype, inp.shape)
    check_batch(meta, engine, "pem export")
    check_outputs(engine, meta, [t.name for t in sidecar.outputs])


def load_plugins(trt: TensorRT, library: Path | None) -> str | None:
    """Register a plugin library given with --plugins; returns its SHA-256 (None when none is given).

    `pem build-engine` embeds the library in the engine (``plugins_to_serialize``), so its engines need
    none; an explicitly given library must be the one the engine was built with (the sidecar's hash).
    """
    path = library
    if path is None:
        return None
    if not path.is_file():
        raise PemError(f"--plugins {path}: no such file; build it with `make plugins`")
    registry = trt.module.get_plugin_registry()
    if registry.load_library(str(path)) is None:
        raise PemError(f"{trt.flavour} could not load plugin library {path}; rebuild it with `make plugins`")
    return sha256_file(path)


class TensorRTBackend:
    """Args:
    path: ``.engine`` file with its ``.engine.json`` sidecar (export/build_engine.py).
    plugins: plugin library to load for engines that do not embed it (`pem build-engine` embeds it).
    cuda_graph: replay one CUDA graph per frame (classic) / let TensorRT-RTX capture its kernels.
    device: CUDA device index.
    """

    def __init__(
        self, path: Path, plugins: Path | None = None, cuda_graph: bool = True, device: int = 0
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise PemError(f"--engine {path}: no such file; build one with `pem build-engine`")
        sidecar = read_sidecar(self.path)
        check_sidecar_io(self.path, sidecar)
        self.meta: ModelMeta = sidecar.model
        try:
            trt = load_tensorrt(sidecar.flavour)
        except PemError as e:
            raise BackendUnavailable(f"{sidecar.flavour} is not installed ({str(e).split(';')[0]})") from None
        # flavour and version first: they need no GPU, so a wrong engine is refused on any machine
        check_compatible(self.path, sidecar, trt.flavour, trt.version, None, None)
        gpu = probe_gpu(device)
        plugin_sha = load_plugins(trt, plugins)
        check_compatible(self.path, sidecar, trt.flavour, trt.version, gpu.compute_capability, plugin_sha)
        self.gpu: GpuInfo = gpu
        self.trt = trt
        self._buffers: dict[str, HostDeviceBuffer] = {}
        self._graph: CudaGraph | None = None
        self._stream: Any = None
        self._device = device
        self._thread = threading.local()
        try:
            self._open(sidecar, cuda_graph, device)
        except BaseException:
            self.close()
            raise
        graph = (
            "CUDA graph" if self._graph is not None else ("RTX CUDA graph" if self._rtx_graph else "no graph")
        )
        self.name = f"{trt.flavour} {trt.version} on {gpu.name} ({gpu.compute_capability}, {graph})"

    def _open(self, sidecar: EngineSidecar, cuda_graph: bool, device: int) -> None:
        rt = cudart()
        mod = self.trt.module
        check(rt.cudaSetDevice(device), "cudaSetDevice")
        self._logger = self.trt.logger()
        self._runtime = mod.Runtime(self._logger)
        if sidecar.plugin_sha256 and hasattr(self._runtime, "engine_host_code_allowed"):
            # the plugin library is embedded in the engine: host code TensorRT loads on deserialisation.
            # Engines are executable artefacts: run only engines you built or got over a trusted channel.
            self._runtime.engine_host_code_allowed = True
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise PemError(
                f"{self.trt.flavour} could not deserialise {self.path} (see its log above); if it uses PEM "
                "plugins not embedded in it pass --plugins build/plugins/libpem_plugins.so, else rebuild: "
                f"{sidecar.build_command or 'pem build-engine'}"
            )
        self._engine = engine
        self._rtx_graph = False
        if self.trt.flavour == "tensorrt_rtx" and cuda_graph and hasattr(engine, "create_runtime_config"):
            config = engine.create_runtime_config()
            config.cuda_graph_strategy = mod.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
            context = engine.create_execution_context(config)
            self._rtx_graph = True
        else:
            context = engine.create_execution_context()
        if context is None:
            raise PemError(f"{self.trt.flavour} could not create an execution context for {self.path}")
        self._context = context
        self._stream = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreate")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == mod.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        self._check_engine_io(sidecar, inputs, outputs)
        shape = (1, self.meta.input_height, self.meta.input_width, 3)
        if int(engine.get_tensor_shape("image")[0]) == -1:
            context.set_input_shape("image", shape)
        self._outputs = list(self.meta.outputs)
        for name in ["image", *outputs]:
            dims = tuple(int(d) for d in context.get_tensor_shape(name))
            if any(d < 0 for d in dims):
                raise PemError(f"engine {self.path}: output {name} has an unresolved shape {list(dims)}")
            dtype = np.dtype(mod.nptype(engine.get_tensor_dtype(name)))
            buffer = HostDeviceBuffer(dims, dtype)
            self._buffers[name] = buffer
            if not context.set_tensor_address(name, buffer.device_ptr):
                raise PemError(f"engine {self.path}: could not bind tensor {name}")
        self._enqueue()  # the first run also flushes deferred shape work, as CUDA graph capture requires
        check(rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        if cuda_graph and not self._rtx_graph:
            try:
                self._graph = CudaGraph(self._stream, self._enqueue)
            except PemError as e:
                print(f"note: CUDA graph capture failed ({e}); running without a graph")
                self._graph = None

    def _check_engine_io(self, sidecar: EngineSidecar, inputs: list[str], outputs: list[str]) -> None:
        want_in = [t.name for t in sidecar.inputs]
        want_out = sorted(t.name for t in sidecar.outputs)
        if inputs != want_in or sorted(outputs) != want_out:
            raise PemError(
                f"engine {self.path} does not match its sidecar (engine I/O {inputs} -> {sorted(outputs)}, "
                f"sidecar {want_in} -> {want_out}); rebuild: {sidecar.build_command or 'pem build-engine'}"
            )
        dtype = np.dtype(self.trt.module.nptype(self._engine.get_tensor_dtype("image")))
        if dtype != np.uint8:
            raise PemError(
                f"engine {self.path} takes {dtype} frames, not uint8 BGR; rebuild it from `pem export`"
            )

    def _enqueue(self) -> None:
        """H2D input, inference, D2H outputs, all on the stream (captured into the graph when enabled)."""
        self._buffers["image"].to_device(self._stream)
        if not self._context.execute_async_v3(int(self._stream)):
            raise PemError(f"{self.trt.flavour} execute_async_v3 failed on {self.path} (see its log)")
        for name in self._outputs:
            self._buffers[name].to_host(self._stream)

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        if getattr(self._thread, "device", None) != self._device:  # the pipeline calls from its own thread
            check(cudart().cudaSetDevice(self._device), "cudaSetDevice")
            self._thread.device = self._device
        np.copyto(self._buffers["image"].host, image, casting="no")
        if self._graph is not None:
            self._graph.launch(self._stream)
        else:
            self._enqueue()
        check(cudart().cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return {name: self._buffers[name].host.copy() for name in self._outputs}

    def close(self) -> None:
        if self._graph is not None:
            self._graph.destroy()
            self._graph = None
        for buffer in self._buffers.values():
            buffer.free()
        self._buffers.clear()
        if self._stream is not None:
            cudart().cudaStreamDestroy(self._stream)
            self._stream = None
        for attr in ("_context", "_engine", "_runtime"):
            if hasattr(self, attr):
                setattr(self, attr, None)


def sibling_onnx(engine: Path, onnx_sha256: str = "") -> Path | None:
    """The reference ONNX an engine was built from: same folder, its stem a prefix of the engine's name
    (``m_semantic_512x1024.onnx`` -> ``m_semantic_512x1024.fp16.sm86.rtx1.7.engine``), never a .trt.onnx;
    the one whose SHA-256 is the sidecar's ``onnx_sha256`` first."""
    candidates = [
        p
        for p in engine.parent.glob("*.onnx")
        if p.is_file() and not p.name.endswith(".trt.onnx") and engine.name.startswith(p.stem + ".")
    ]
    if not candidates:
        return None
    if onnx_sha256:
        for p in candidates:
            if sha256_file(p) == onnx_sha256:
                return p
    return max(candidates, key=lambda p: len(p.name))
