"""Does this machine's NVIDIA driver run the plugin library? Checked before any engine build or run.

The plugin library links the CUDA runtime statically, so every kernel launch needs a driver that supports
that runtime's major version (CUDA minor-version compatibility covers the rest): CUDA 13 needs R580 or
newer, CUDA 12 R525 or newer. The library records its runtime version as a marker string
(``pem-plugins-cuda-runtime=13000``), read here from the file without loading it; the engine sidecar keeps
the same number for engines that embed the library.

The driver's version is what ``cuDriverGetVersion`` of ``libcuda.so.1`` reports (e.g. 12080 for a driver
that supports CUDA 12.8), or ``$PEM_CUDA_DRIVER_VERSION`` (``12.8`` or ``12080``) where it is set: that
names the driver of another machine (the one an engine is meant for) and lets tests play an old driver.
No driver at all (a CPU-only build machine) passes: there is nothing to launch on. Torch-free.
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

from pem_rt.errors import PemError

DRIVER_ENV = "PEM_CUDA_DRIVER_VERSION"
MARKER = re.compile(rb"pem-plugins-cuda-runtime=(\d+)\0")
# the oldest Linux driver branch that supports each CUDA major version (NVIDIA's CUDA release notes)
MIN_DRIVER = {12: "R525 (525.60.13)", 13: "R580 (580.65.06)"}
REBUILD = (
    "or rebuild the plugins with this driver's CUDA toolkit (`python -m plugins.builder --cuda-root "
    "/usr/local/cuda-12.6` for CUDA 12 stacks such as JetPack 6) and the engine with them"
)


def library_cuda_runtime(library: str | os.PathLike[str]) -> int | None:
    """The CUDA runtime version the plugin library was built with (13000 = CUDA 13.0), None if unmarked."""
    match = MARKER.search(Path(library).read_bytes())
    return int(match.group(1)) if match else None


def version_text(version: int) -> str:
    """13000 -> '13.0'."""
    return f"{version // 1000}.{version % 1000 // 10}"


def parse_version(text: str, where: str) -> int:
    """'12.8', '12080' or '13' -> the cuDriverGetVersion number; one PemError line otherwise."""
    m = re.fullmatch(r"\s*(\d+)(?:\.(\d+))?\s*", text)
    if not m:
        raise PemError(f"{where}={text!r}: give a CUDA version such as 12.8 or 12080")
    major, minor = int(m.group(1)), int(m.group(2) or 0)
    return major if m.group(2) is None and major >= 1000 else major * 1000 + minor * 10


def driver_cuda_version() -> int | None:
    """The CUDA version this machine's driver supports, or None when there is no driver."""
    override = os.environ.get(DRIVER_ENV)
    if override:
        return parse_version(override, DRIVER_ENV)
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
        return None
    return int(version.value)


def describe_requirement(cuda_runtime: int) -> str:
    """One line: what the library was built with and the driver that needs."""
    major = cuda_runtime // 1000
    driver = MIN_DRIVER.get(major, f"one that supports CUDA {major}.0")
    return f"built with CUDA {version_text(cuda_runtime)}: needs an NVIDIA driver {driver} or newer"


def check_driver(cuda_runtime: int | None, what: str) -> None:
    """Refuse, in one line, a driver too old for code built with ``cuda_runtime`` (None or 0: no check)."""
    if not cuda_runtime:
        return
    have = driver_cuda_version()
    needed = cuda_runtime // 1000 * 1000  # minor-version compatibility within a major release
    if have is None or have >= needed:
        return
    raise PemError(
        f"{what} was {describe_requirement(cuda_runtime)}; this machine's driver supports CUDA "
        f"{version_text(have)}: update the driver, {REBUILD}"
    )
