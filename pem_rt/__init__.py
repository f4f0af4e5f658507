"""The torch-free core of PEM-RT that every stage imports (and that imports no stage): the project error
type, atomic file writes, the `pem` command, the artefact contracts (ONNX model metadata, engine sidecars,
prediction files), sizes, image suffixes, label maps and segments, frame fitting and the synthetic scene.

Torch-free: numpy, plus OpenCV where images are decoded, fitted or drawn (both the runtime and training
install it), so the edge runtime can import every module.
"""

from pem_rt.errors import PemError

__all__ = ["PemError"]
