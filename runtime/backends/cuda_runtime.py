"""The few CUDA runtime calls the TensorRT backend needs, through cuda-python (``cuda.bindings.runtime``).

cuda-python is the optional ``gpu`` extra (``pip install 'pem-rt[gpu]'``); everything here imports it
lazily, and :func:`probe_gpu` turns every way of not having a usable GPU (no cuda-python, no driver, no
device) into one line, so the runtime can say so and use ONNX Runtime instead.
Every call is checked: a failing CUDA call raises :class:`PemError` naming the call and CUDA's message.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from pem_rt.errors import PemError
from runtime.backends.base import BackendUnavailable


def cudart() -> ModuleType:
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:  # cuda-python < 12.6 spelled it cuda.cudart
            from cuda import cudart as runtime
        except ImportError:
            raise BackendUnavailable(
                "cuda-python is not installed (the TensorRT backend needs it): pip install 'pem-rt[gpu]'"
            ) from None
    return runtime


def check(result: Any, call: str) -> Any:
    """Unpack a cuda-python ``(err, *values)`` tuple: the values, or a PemError naming ``call``."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        rt = cudart()
        _, message = rt.cudaGetErrorString(err)
        text = message.decode() if isinstance(message, bytes) else str(message)
        raise PemError(f"CUDA {call} failed: {text} ({int(err)})")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str  # "sm86"
    memory_gib: float


def probe_gpu(index: int = 0) -> GpuInfo:
    """The GPU the TensorRT backend would use, or :class:`BackendUnavailable` saying why there is none."""
    rt = cudart()
    try:
        err, count = rt.cudaGetDeviceCount()
    except Exception as e:  # cuda-python raises (not returns) when libcuda itself cannot be found
        raise BackendUnavailable(f"no NVIDIA driver ({str(e).splitlines()[0][:120]})") from None
    if int(err) != 0:
        _, message = rt.cudaGetErrorString(err)
        text = message.decode() if isinstance(message, bytes) else str(message)
        raise BackendUnavailable(f"no usable NVIDIA GPU ({text})")
    if count <= index:
        raise BackendUnavailable(f"no NVIDIA GPU {index} ({count} found)")
    props = check(rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = (
        props.name.decode(errors="replace").rstrip("\x00")
        if isinstance(props.name, bytes)
        else str(props.name)
    )
    return GpuInfo(index, name, f"sm{props.major}{props.minor}", props.totalGlobalMem / 2**30)


class HostDeviceBuffer:
    """One tensor's pinned (page-locked) host array and its device twin, so copies can be asynchronous."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        rt = cudart()
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.nbytes = max(1, int(np.prod(shape)) * self.dtype.itemsize)
        self.host_ptr = int(check(rt.cudaMallocHost(self.nbytes), "cudaMallocHost"))
        self.device_ptr = int(check(rt.cudaMalloc(self.nbytes), "cudaMalloc"))
        raw = memoryview((ctypes.c_uint8 * self.nbytes).from_address(self.host_ptr)).cast("B")
        self.host: np.ndarray = np.frombuffer(raw, dtype=self.dtype, count=int(np.prod(shape))).reshape(shape)

    def to_device(self, stream: Any, nbytes: int | None = None) -> None:
        """Copy the first ``nbytes`` (default: all) to the device, asynchronously on ``stream``."""
        rt = cudart()
        kind = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        size = self.nbytes if nbytes is None else nbytes
        check(rt.cudaMemcpyAsync(self.device_ptr, self.host_ptr, size, kind, stream), "cudaMemcpyAsync H2D")

    def to_host(self, stream: Any, nbytes: int | None = None) -> None:
        """Copy the first ``nbytes`` (default: all) back to the host, asynchronously on ``stream``."""
        rt = cudart()
        kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        size = self.nbytes if nbytes is None else nbytes
        check(rt.cudaMemcpyAsync(self.host_ptr, self.device_ptr, size, kind, stream), "cudaMemcpyAsync D2H")

    def free(self) -> None:
        rt = cudart()
        if self.host_ptr:
            self.host = np.empty(0, self.dtype)  # drop the view before the memory goes
            rt.cudaFreeHost(self.host_ptr)
            self.host_ptr = 0
        if self.device_ptr:
            rt.cudaFree(self.device_ptr)
            self.device_ptr = 0


class CudaGraph:
    """Capture the work enqueued on ``stream`` by ``enqueue()`` once, then replay it with one launch."""

    def __init__(self, stream: Any, enqueue: Any) -> None:
        rt = cudart()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        check(rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        finally:
            graph = check(rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        self.graph = graph
        self.exec = check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")

    def launch(self, stream: Any) -> None:
        check(cudart().cudaGraphLaunch(self.exec, stream), "cudaGraphLaunch")

    def destroy(self) -> None:
        rt = cudart()
        if self.exec is not None:
            rt.cudaGraphExecDestroy(self.exec)
            self.exec = None
        if self.graph is not None:
            rt.cudaGraphDestroy(self.graph)
            self.graph = None
