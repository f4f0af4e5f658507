"""Post-install fix-ups run by `make install` (idempotent).

- TensorRT-RTX's ONNX parser dlopens the unversioned ``libtensorrt_rtx.so`` while the PyPI wheel ships
  only ``libtensorrt_rtx.so.1``; without the link the process aborts as soon as a plugin is created.
  The parser library's RPATH is $ORIGIN, so a link beside it is found.
- In a venv made with --system-site-packages (a Jetson: JetPack's TensorRT and GStreamer OpenCV live in
  the system python), a pip-installed OpenCV inside the venv would shadow the system's (pip's has no
  GStreamer): it is uninstalled, so ``import cv2`` finds JetPack's.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path

# pip distributions that provide cv2
OPENCV_DISTS = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)


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


def locations(module: str, paths: list[str]) -> list[Path]:
    """Every entry of ``paths`` from which ``module`` can be imported, in import order."""
    found = []
    for entry in paths:
        spec = importlib.machinery.PathFinder.find_spec(module, [entry])
        if spec is not None:
            found.append(Path(entry))
    return found


def shadowed(module: str, prefix: str = sys.prefix, paths: list[str] | None = None) -> Path | None:
    """The system location of ``module`` when a copy inside the venv at ``prefix`` hides it, else None."""
    where = locations(module, sys.path if paths is None else paths)
    inside = [p for p in where if p.is_relative_to(prefix)]
    outside = [p for p in where if not p.is_relative_to(prefix)]
    return outside[0] if inside and outside and where[0] in inside else None


def unshadow_opencv() -> str:
    """Uninstall pip's OpenCV from the venv when it hides a system OpenCV (a Jetson's)."""
    if sys.prefix == sys.base_prefix:
        return "not in a venv: nothing to unshadow"
    system = shadowed("cv2")
    if system is None:
        return "cv2: no system OpenCV hidden by the venv"
    from importlib import metadata

    installed = []
    for dist in OPENCV_DISTS:
        try:
            metadata.version(dist)
            installed.append(dist)
        except metadata.PackageNotFoundError:
            continue
    if installed:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", *installed], check=True)
    removed = ", ".join(installed) or "nothing"
    return f"cv2: removed {removed} from the venv; the system OpenCV in {system} is used"


def main() -> int:
    print(f"setup_env: {link_tensorrt_rtx()}")
    print(f"setup_env: {unshadow_opencv()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
