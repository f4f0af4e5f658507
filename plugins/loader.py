"""Load the plugin library into TensorRT or TensorRT-RTX and check that every creator registered.

    import tensorrt_rtx as trt            # or: import tensorrt as trt
    import plugins
    plugins.load(trt)                     # build/plugins/libpem_plugins.so unless a path is given

Registration happens only here, explicitly (never as an import side effect): the registry dlopens the
library and calls its ``getCreators``; then every name in ``CREATOR_NAMES`` must be found in namespace
``pem``, version ``1``, or a :class:`~pem_rt.errors.PemError` names the missing one and the fix.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pem_rt.errors import PemError

PLUGIN_NAMESPACE = "pem"
PLUGIN_VERSION = "1"
CREATOR_NAMES: tuple[str, ...] = ("ModulatedDeformConv2d", "PrototypeSelection")
REBUILD_HINT = "rebuild it with `make plugins` (or `python -m plugins.builder`)"


def default_library() -> Path:
    from plugins.builder import DEFAULT_BUILD_DIR, LIBRARY_NAME

    return DEFAULT_BUILD_DIR / LIBRARY_NAME


def missing_creators(registry: Any, names: Sequence[str] = CREATOR_NAMES) -> list[str]:
    """The names in ``names`` that ``registry`` has no creator for (namespace pem, version 1)."""
    return [n for n in names if registry.get_creator(n, PLUGIN_VERSION, PLUGIN_NAMESPACE) is None]


def _dlopen_reason(path: Path) -> str:
    """Why ``path`` was refused (TensorRT only returns a null handle and logs the reason)."""
    try:
        lib = ctypes.CDLL(str(path), mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    except OSError as e:
        return str(e).splitlines()[0]
    missing = [name for name in ("getCreators", "setLoggerFinder") if not hasattr(lib, name)]
    if missing:
        return f"it does not export {' and '.join(missing)}"
    return "the library loads, but TensorRT rejected it; its log says why"


def load(
    trt_module: ModuleType,
    library: str | os.PathLike[str] | None = None,
    creators: Sequence[str] = CREATOR_NAMES,
) -> Path:
    """Register the PEM plugins with ``trt_module`` (``tensorrt`` or ``tensorrt_rtx``); returns the library.

    Idempotent: when every creator is already registered, nothing is loaded again.
    """
    path = Path(library) if library is not None else default_library()
    if not path.is_file():
        raise PemError(f"plugin library {path} not found: build it with `make plugins` (or plugins.build())")
    flavour = getattr(trt_module, "__name__", "TensorRT")
    registry = trt_module.get_plugin_registry()
    if not missing_creators(registry, creators):
        return path
    handle = registry.load_library(str(path))
    if handle is None:
        raise PemError(
            f"{flavour} could not load plugin library {path} ({_dlopen_reason(path)}): {REBUILD_HINT}"
        )
    missing = missing_creators(registry, creators)
    if missing:
        raise PemError(
            f"plugin library {path} loaded but has no creator {missing[0]} (namespace {PLUGIN_NAMESPACE}, "
            f"version {PLUGIN_VERSION}): {REBUILD_HINT} from this checkout"
        )
    return path


def embed_in_engine(config: Any, library: str | os.PathLike[str] | None = None) -> None:
    """Serialise the plugin library into the engine (``IBuilderConfig.plugins_to_serialize``), so running
    the engine needs no separate .so."""
    path = Path(library) if library is not None else default_library()
    if not path.is_file():
        raise PemError(f"plugin library {path} not found: build it with `make plugins` (or plugins.build())")
    config.plugins_to_serialize = [*config.plugins_to_serialize, str(path)]
