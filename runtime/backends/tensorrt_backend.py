"""TensorRT backend (classic TensorRT 10+ or TensorRT-RTX): engine + sidecar -> labels on the GPU.

Before anything is deserialised the sidecar is read and checked against this machine (flavour, TensorRT
version, the driver the plugin library needs, GPU compute capability, plugin library): a mismatch is one
line with the rebuild command or the driver to install.
Per call: the frames are copied into a pinned host buffer, then H2D copy, ``execute_async_v3`` and D2H
copies of the (small, integer) outputs are enqueued on one CUDA stream and waited for once. With classic
TensorRT that whole sequence is captured into a CUDA graph and replayed with a single launch;
TensorRT-RTX captures its own kernels (``IRuntimeConfig.cuda_graph_strategy``), the copies stay outside.

Dynamic-batch engines (`pem export --dynamic-batch` + `pem build-engine --batch min,opt,max`) take 1 to
the profile's max frames per call; the I/O buffers are sized for the max and each call copies only its
frames. A CUDA graph fixes the shapes it was captured with, so classic TensorRT with graphs rounds a
batch up to a power of two (or the max) and keeps one execution context and graph per such size
(made on first use, each with its own activation memory); TensorRT-RTX and runs without graphs use one
context and set its input shape when the batch size changes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pem_rt.driver import check_driver, library_cuda_runtime
from pem_rt.engine_meta import EngineSidecar, check_compatible, read_sidecar, sha256_file, verify_engine
from pem_rt.errors import PemError
from pem_rt.model_meta import ModelMeta
from pem_rt.trt import TensorRT, load_tensorrt
from runtime.backends.base import BackendUnavailable, check_input, check_outputs
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
    check_outputs(engine, meta, [t.name for t in sidecar.outputs])


def load_plugins(trt: TensorRT, library: Path | None) -> str | None:
    """Register a plugin library given with --plugins (plugins.load: every creator checked); returns its
    SHA-256 (None when none is given).

    `pem build-engine` embeds the library in the engine (``plugins_to_serialize``), so its engines need
    none; an explicitly given library must be the one the engine was built with (the sidecar's hash).
    """
    from plugins.loader import load

    if library is None:
        return None
    if not library.is_file():
        raise PemError(f"--plugins {library}: no such file; build it with `make plugins`")
    return sha256_file(load(trt.module, library))


def batch_bucket(n: int, max_batch: int) -> int:
    """The batch a CUDA graph runs ``n`` frames at: the next power of two, capped at ``max_batch``."""
    bucket = 1
    while bucket < n:
        bucket *= 2
    return min(bucket, max_batch)


@dataclass
class _Runner:
    """An execution context set to one batch size, and its CUDA graph (classic TensorRT) if captured."""

    context: Any
    batch: int
    graph: CudaGraph | None = None


class TensorRTBackend:
    """Args:
    path: ``.engine`` file with its ``.engine.json`` sidecar (export/build_engine.py).
    plugins: plugin library to load for engines that do not embed it (`pem build-engine` embeds it).
    cuda_graph: replay one CUDA graph per call (classic) / let TensorRT-RTX capture its kernels.
    device: CUDA device index.
    """

    def __init__(
        self, path: Path, plugins: Path | None = None, cuda_graph: bool = True, device: int = 0
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise PemError(f"--engine {path}: no such file; build one with `pem build-engine`")
        sidecar = read_sidecar(self.path)
        verify_engine(self.path, sidecar)
        check_sidecar_io(self.path, sidecar)
        self.meta: ModelMeta = sidecar.model
        try:
            trt = load_tensorrt(sidecar.flavour)
        except PemError as e:
            raise BackendUnavailable(f"{sidecar.flavour} is not installed ({str(e).split(';')[0]})") from None
        # flavour, version and driver first: they need no GPU, so a wrong engine is refused on any machine
        check_compatible(self.path, sidecar, trt.flavour, trt.version, None, None)
        check_driver(sidecar.plugin_cuda_runtime, f"engine {self.path} (its plugin library)")
        if plugins is not None and plugins.is_file():
            check_driver(library_cuda_runtime(plugins), f"--plugins {plugins}")
        gpu = probe_gpu(device)
        plugin_sha = load_plugins(trt, plugins)
        check_compatible(self.path, sidecar, trt.flavour, trt.version, gpu.compute_capability, plugin_sha)
        self.gpu: GpuInfo = gpu
        self.trt = trt
        self.max_batch = 1
        self._buffers: dict[str, HostDeviceBuffer] = {}
        self._runners: dict[int, _Runner] = {}
        self._graphs = False  # classic TensorRT: one context + CUDA graph per batch bucket
        self._stream: Any = None
        self._device = device
        self._thread = threading.local()
        try:
            self._open(sidecar, cuda_graph, device)
        except BaseException:
            self.close()
            raise
        graph = "CUDA graph" if self._graphs else ("RTX CUDA graph" if self._rtx_graph else "no graph")
        self.name = f"{trt.flavour} {trt.version} on {gpu.name} ({gpu.compute_capability}, {graph})"

    def _open(self, sidecar: EngineSidecar, cuda_graph: bool, device: int) -> None:
        rt = cudart()
        mod = self.trt.module
        check(rt.cudaSetDevice(device), "cudaSetDevice")
        self._logger = self.trt.logger()
        self._runtime = mod.Runtime(self._logger)
        host_code = bool(sidecar.plugin_sha256) or sidecar.version_compatible
        if host_code and hasattr(self._runtime, "engine_host_code_allowed"):
            # the plugin library (or, version-compatible, the lean runtime) is embedded in the engine: host
            # code TensorRT loads on deserialisation.
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
        self._rtx_graph = self.trt.flavour == "tensorrt_rtx" and cuda_graph
        self._rtx_graph = self._rtx_graph and hasattr(engine, "create_runtime_config")
        self._stream = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreate")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == mod.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        self._check_engine_io(sidecar, inputs, outputs)
        self._dynamic = int(engine.get_tensor_shape("image")[0]) == -1
        if self._dynamic:
            _, _, largest = engine.get_tensor_profile_shape("image", 0)
            self.max_batch = int(largest[0])
        else:
            self.max_batch = int(engine.get_tensor_shape("image")[0])
        self._outputs = list(self.meta.outputs)
        first = self._runner(self.max_batch)  # shapes at the max size the buffers
        for name in ["image", *outputs]:
            dims = tuple(int(d) for d in first.context.get_tensor_shape(name))
            if any(d < 0 for d in dims):
                raise PemError(f"engine {self.path}: output {name} has an unresolved shape {list(dims)}")
            dtype = np.dtype(mod.nptype(engine.get_tensor_dtype(name)))
            self._buffers[name] = HostDeviceBuffer(dims, dtype)
        self._graphs = cuda_graph and not self._rtx_graph
        self._runners.clear()
        self._bind(first)
        if not self._graphs:
            self._runners[0] = first  # one context for every batch size
            self._enqueue(first, self.max_batch)  # flushes deferred shape work
            check(rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        else:
            first.context = None
            self._runner_for(1 if self._dynamic else self.max_batch)  # capture the common case now

    def _runner(self, batch: int) -> _Runner:
        """A new execution context with its input shape set to ``batch`` frames."""
        mod = self.trt.module
        if self._rtx_graph:
            config = self._engine.create_runtime_config()
            config.cuda_graph_strategy = mod.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
            context = self._engine.create_execution_context(config)
        else:
            context = self._engine.create_execution_context()
        if context is None:
            raise PemError(f"{self.trt.flavour} could not create an execution context for {self.path}")
        runner = _Runner(context, batch)
        if self._dynamic:
            context.set_input_shape("image", (batch, self.meta.input_height, self.meta.input_width, 3))
        return runner

    def _bind(self, runner: _Runner) -> None:
        for name, buffer in self._buffers.items():
            if not runner.context.set_tensor_address(name, buffer.device_ptr):
                raise PemError(f"engine {self.path}: could not bind tensor {name}")

    def _runner_for(self, n: int) -> _Runner:
        """The runner that executes ``n`` frames (made and, with graphs, captured on first use)."""
        if not self._graphs:
            runner = self._runners[0]
            if self._dynamic and runner.batch != n:
                shape = (n, self.meta.input_height, self.meta.input_width, 3)
                if not runner.context.set_input_shape("image", shape):
                    raise PemError(f"engine {self.path}: cannot set the input shape {list(shape)}")
                runner.batch = n
            return runner
        bucket = batch_bucket(n, self.max_batch) if self._dynamic else self.max_batch
        found = self._runners.get(bucket)
        if found is not None:
            return found
        runner = self._runner(bucket)
        self._bind(runner)
        self._enqueue(runner, bucket)  # flushes deferred shape work, as CUDA graph capture requires
        check(cudart().cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        try:
            runner.graph = CudaGraph(self._stream, lambda: self._enqueue(runner, bucket))
        except PemError as e:
            print(f"note: CUDA graph capture failed ({e}); running without a graph")
        self._runners[bucket] = runner
        return runner

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

    def _enqueue(self, runner: _Runner, n: int) -> None:
        """H2D input, inference, D2H outputs of ``n`` frames on the stream (captured into a graph)."""
        fraction = n / self.max_batch
        image = self._buffers["image"]
        image.to_device(self._stream, int(image.nbytes * fraction))
        if not runner.context.execute_async_v3(int(self._stream)):
            raise PemError(f"{self.trt.flavour} execute_async_v3 failed on {self.path} (see its log)")
        for name in self._outputs:
            buffer = self._buffers[name]
            buffer.to_host(self._stream, int(buffer.nbytes * fraction))

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        if getattr(self._thread, "device", None) != self._device:  # the pipeline calls from its own thread
            check(cudart().cudaSetDevice(self._device), "cudaSetDevice")
            self._thread.device = self._device
        n = int(image.shape[0])
        if not 1 <= n <= self.max_batch or (not self._dynamic and n != self.max_batch):
            allowed = f"1 to {self.max_batch}" if self._dynamic else f"exactly {self.max_batch}"
            raise PemError(f"engine {self.path} takes {allowed} frames per call, got {n}")
        np.copyto(self._buffers["image"].host[:n], image, casting="no")
        runner = self._runner_for(n)
        if runner.graph is not None:
            runner.graph.launch(self._stream)
        else:
            self._enqueue(runner, runner.batch)
        check(cudart().cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return {name: self._buffers[name].host[:n].copy() for name in self._outputs}

    def close(self) -> None:
        for runner in self._runners.values():
            if runner.graph is not None:
                runner.graph.destroy()
                runner.graph = None
            runner.context = None
        self._runners.clear()
        for buffer in self._buffers.values():
            buffer.free()
        self._buffers.clear()
        if self._stream is not None:
            cudart().cudaStreamDestroy(self._stream)
            self._stream = None
        for attr in ("_engine", "_runtime"):
            if hasattr(self, attr):
                setattr(self, attr, None)


def sibling_onnx(engine: Path, onnx_sha256: str = "") -> Path | None:
    """The reference ONNX an engine was built from: same folder, its stem a prefix of the engine's name
    (``m_semantic_512x1024.onnx`` -> ``m_semantic_512x1024.fp16.sm86.rtx1.7.engine``), a reference graph by
    its lineage (never the FP16, INT8 or TensorRT graph beside it); with the sidecar's ``onnx_sha256``, only
    the graph of that SHA-256."""
    from pem_rt.lineage import REFERENCE, graphs

    candidates = [
        g.path
        for g in graphs(engine.parent)
        if g.path.parent == engine.parent
        and g.role == REFERENCE
        and engine.name.startswith(g.path.stem + ".")
    ]
    if onnx_sha256:
        return next((p for p in candidates if sha256_file(p) == onnx_sha256), None)
    return max(candidates, key=lambda p: len(p.name)) if candidates else None
