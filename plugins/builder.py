"""Build the plugin library with one call: ``plugins.build()`` or ``make plugins``.

CMake compiles ``libpem_plugins.so`` (the TensorRT plugins, every CUDA architecture in ``DEFAULT_ARCHS``)
and ``libpem_plugins_hostref.so`` (the kernels' element math for the CPU tests). A full build takes about
a minute on two cores, so results are cached under ``build/plugins/cache/<key>/``, where the key hashes
every source file, the CMake file, the nvcc version, the architecture list and the TensorRT headers used.
The newest build is also copied to ``build/plugins/libpem_plugins.so``. A file lock makes parallel test
workers wait for one build instead of racing.

    python -m plugins.builder [--archs 86-real] [--tensorrt-root /opt/TensorRT] [--force]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pem_rt.command import run_command
from pem_rt.cuda_elf import cuda_architectures
from pem_rt.errors import PemError

PLUGIN_DIR = Path(__file__).resolve().parent
REPO_ROOT = PLUGIN_DIR.parent
DEFAULT_BUILD_DIR = REPO_ROOT / "build" / "plugins"
LIBRARY_NAME = "libpem_plugins.so"
HOSTREF_NAME = "libpem_plugins_hostref.so"
# Turing, Ampere (+ Jetson Orin 87), Ada, Hopper, Blackwell RTX; "120" also embeds PTX for newer GPUs.
DEFAULT_ARCHS = "75-real;80-real;86-real;87-real;89-real;90-real;120"
SOURCE_SUFFIXES = (".h", ".cuh", ".cu", ".cpp", ".map")
CACHE_ENTRIES_KEPT = 4


@dataclass(frozen=True)
class BuildResult:
    """Where the build put its libraries and whether the cache served it."""

    library: Path  # build/plugins/libpem_plugins.so
    hostref: Path  # build/plugins/libpem_plugins_hostref.so
    key: str
    cached: bool
    seconds: float
    tensorrt_include: Path | None  # the SDK headers compiled against, None for our ABI declarations


def source_files() -> list[Path]:
    """Every file that goes into the build, sorted (the Python files and tools are not part of it)."""
    files = [p for p in PLUGIN_DIR.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES]
    files = [
        p for p in files if "__pycache__" not in p.parts and "tools" not in p.relative_to(PLUGIN_DIR).parts
    ]
    return sorted([*files, PLUGIN_DIR / "CMakeLists.txt"])


def find_nvcc() -> Path:
    for candidate in (os.environ.get("CUDACXX"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise PemError("nvcc not found: install the CUDA toolkit (12.8 or newer) or set CUDACXX=/path/to/nvcc")


def find_tensorrt_include(tensorrt_root: str | os.PathLike[str] | None) -> Path | None:
    """The include dir holding NvInferRuntime.h under ``tensorrt_root`` (or $TENSORRT_ROOT), if any."""
    root = tensorrt_root if tensorrt_root is not None else os.environ.get("TENSORRT_ROOT")
    if not root:
        return None
    for candidate in (Path(root) / "include", Path(root)):
        if (candidate / "NvInferRuntime.h").is_file():
            return candidate.resolve()
    raise PemError(
        f"TENSORRT_ROOT={root} has no include/NvInferRuntime.h: point it at a TensorRT SDK or unset it"
    )


def _tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PemError(f"{name} not found: {hint}")
    return path


def build_key(nvcc: Path, archs: str, tensorrt_include: Path | None) -> str:
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(str(path.relative_to(PLUGIN_DIR)).encode())
        digest.update(path.read_bytes())
    version = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, check=False).stdout
    digest.update(version.encode())
    digest.update(archs.encode())
    if tensorrt_include is not None:
        digest.update(str(tensorrt_include).encode())
        for header in sorted(tensorrt_include.glob("NvInfer*.h")):
            digest.update(header.read_bytes())
    return digest.hexdigest()[:20]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _publish(source: Path, target: Path) -> None:
    """Copy ``source`` onto ``target`` atomically (a process that has the old file loaded keeps it)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copy2(source, tmp)
    os.replace(tmp, target)


def _prune(cache: Path, keep: Path) -> None:
    entries = sorted(
        (p for p in cache.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for old in entries[CACHE_ENTRIES_KEPT:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def _run_logged(cmd: Sequence[str], log: Path, verbose: bool) -> None:
    with open(log, "a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        result = subprocess.run(cmd, stdout=None if verbose else out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        lines = [line for line in log.read_text(errors="replace").splitlines() if "error" in line.lower()]
        first = lines[0].strip() if lines else f"exit code {result.returncode}"
        raise PemError(f"plugin build failed ({first[:200]}); full log: {log}")


def build(
    *,
    build_dir: str | os.PathLike[str] | None = None,
    archs: str | None = None,
    tensorrt_root: str | os.PathLike[str] | None = None,
    force: bool = False,
    verbose: bool = False,
    jobs: int | None = None,
) -> BuildResult:
    """Build (or fetch from the cache) the plugin library and the host test library.

    Args:
        build_dir: where the cache and the published libraries live (default ``build/plugins``).
        archs: CMake CUDA architectures, default ``DEFAULT_ARCHS`` (SM75/80/86/87/89/90/120).
        tensorrt_root: a TensorRT SDK to compile against; default $TENSORRT_ROOT, else our ABI declarations.
        force: rebuild even when the cache has this key.
        verbose: stream the compiler output instead of writing it to the log only.
        jobs: parallel compile jobs (default: all cores).
    """
    start = time.monotonic()
    out_dir = Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR
    arch_list = archs or DEFAULT_ARCHS
    nvcc = find_nvcc()
    trt_include = find_tensorrt_include(tensorrt_root)
    cmake = _tool("cmake", "install CMake 3.24 or newer (apt-get install cmake, or pip install cmake)")
    key = build_key(nvcc, arch_list, trt_include)
    entry = out_dir / "cache" / key
    library, hostref = entry / LIBRARY_NAME, entry / HOSTREF_NAME
    with _locked(out_dir / ".build.lock"):
        cached = not force and library.is_file() and hostref.is_file()
        if not cached:
            tree = entry / "cmake"
            shutil.rmtree(entry, ignore_errors=True)
            tree.mkdir(parents=True)
            log = entry / "build.log"
            configure = [cmake, "-S", str(PLUGIN_DIR), "-B", str(tree), f"-DCMAKE_CUDA_COMPILER={nvcc}"]
            configure += [f"-DPEM_CUDA_ARCHS={arch_list}", f"-DTENSORRT_ROOT={trt_include or ''}"]
            if shutil.which("ninja"):
                configure += ["-G", "Ninja"]
            _run_logged(configure, log, verbose)
            _run_logged(
                [cmake, "--build", str(tree), "--parallel", str(jobs or os.cpu_count() or 2)], log, verbose
            )
            shutil.copy2(tree / LIBRARY_NAME, library)
            shutil.copy2(tree / HOSTREF_NAME, hostref)
            shutil.rmtree(tree, ignore_errors=True)
        entry.touch()
        _publish(library, out_dir / LIBRARY_NAME)
        _publish(hostref, out_dir / HOSTREF_NAME)
        _prune(out_dir / "cache", entry)
    return BuildResult(
        library=out_dir / LIBRARY_NAME,
        hostref=out_dir / HOSTREF_NAME,
        key=key,
        cached=cached,
        seconds=time.monotonic() - start,
        tensorrt_include=trt_include,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build-plugins", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--build-dir", type=Path, default=None, help="default: build/plugins")
    parser.add_argument("--archs", default=None, help=f"CMake CUDA architectures (default: {DEFAULT_ARCHS})")
    parser.add_argument("--tensorrt-root", default=None, help="TensorRT SDK root (default: $TENSORRT_ROOT)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache has this build")
    parser.add_argument("--verbose", action="store_true", help="show the compiler output")

    def body(args: argparse.Namespace) -> int:
        result = build(
            build_dir=args.build_dir,
            archs=args.archs,
            tensorrt_root=args.tensorrt_root,
            force=args.force,
            verbose=args.verbose,
        )
        headers = result.tensorrt_include or "our ABI declarations (plugins/common/trt_abi)"
        how = "cache hit" if result.cached else "built"
        archs = cuda_architectures(result.library)
        print(f"{result.library} ({how} {result.key}, {result.seconds:.1f} s, headers: {headers})")
        print(f"  SASS for sm_{', sm_'.join(map(str, archs['sass']))}; PTX for {archs['ptx']}")
        return 0

    return run_command("build-plugins", parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
