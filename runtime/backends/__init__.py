"""Inference backends behind one small interface (:class:`Backend`): ONNX Runtime and TensorRT.

Heavy imports (onnxruntime, tensorrt, cuda-python) happen only when a backend is opened.
"""

from runtime.backends.base import Backend, BackendUnavailable
from runtime.backends.loader import BACKENDS, BackendOptions, open_backend

__all__ = ["BACKENDS", "Backend", "BackendOptions", "BackendUnavailable", "open_backend"]
