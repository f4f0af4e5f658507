"""TensorRT plugins (C++/CUDA): modulated deformable conv and fused prototype selection.

    import plugins
    plugins.build()              # compile (or reuse) build/plugins/libpem_plugins.so
    plugins.load(tensorrt_rtx)   # register the creators with TensorRT or TensorRT-RTX, checked

The ops, their ONNX node form and the build are described in plugins/README.md. The names below are
imported lazily, so ``python -m plugins.builder`` runs its module exactly once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugins.builder import BuildResult, BuildSettings, build
    from plugins.loader import (
        CREATOR_NAMES,
        PLUGIN_NAMESPACE,
        PLUGIN_VERSION,
        default_library,
        embed_in_engine,
        load,
    )

_EXPORTS = {
    "BuildResult": "plugins.builder",
    "BuildSettings": "plugins.builder",
    "build": "plugins.builder",
    "CREATOR_NAMES": "plugins.loader",
    "PLUGIN_NAMESPACE": "plugins.loader",
    "PLUGIN_VERSION": "plugins.loader",
    "default_library": "plugins.loader",
    "embed_in_engine": "plugins.loader",
    "load": "plugins.loader",
}

__all__ = [
    "CREATOR_NAMES",
    "PLUGIN_NAMESPACE",
    "PLUGIN_VERSION",
    "BuildResult",
    "BuildSettings",
    "build",
    "default_library",
    "embed_in_engine",
    "load",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'plugins' has no attribute {name!r}")
