"""Post-install fix-ups run by `make install` (idempotent).

TensorRT-RTX's ONNX parser dlopens the unversioned ``libtensorrt_rtx.so`` while the PyPI wheel ships
only ``libtensorrt_rtx.so.1``; without the link the process aborts as soon as a plugin is created.
The parser library's RPATH is $ORIGIN, so a link beside it is found.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def link_tensorrt_rtx() -> str:
    spec = importlib.util.find_spec("tensorrt_rtx_libs")
    if spec is None or not spec.submodule_search_locations:
        return "tensorrt_rtx_libs not installed: nothing to link"
    libdir = Path(next(iter(spec.submodule_search_locations)))
    target = libdir / "libtensorrt_rtx.so.1"
    link = libdir / "libtensorrt_rtx.so"
    if not target.exists():
        return f"{target} not found: nothing to link"
    if link.exists() or link.is_symlink():
        return f"{link} present"
    link.symlink_to(target.name)
    return f"linked {link} -> {target.name}"


def main() -> int:
    print(f"setup_env: {link_tensorrt_rtx()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
