"""Build the plugin library with one call: ``plugins.build()`` or ``make plugins``.

CMake compiles ``libpem_plugins.so`` (the TensorRT plugins: SASS for every SM in ``WANTED_SMS`` the
toolkit's nvcc lists, PTX for the newest) and ``libpem_plugins_hostref.so`` (the kernels' element math for
the CPU tests). A full build takes minutes on two cores, so results are cached under
``build/plugins/cache/<key>/``, where the key hashes every source file, the CMake file, the nvcc version,
the architecture list and the TensorRT headers used.
The newest build is also copied to ``build/plugins/libpem_plugins.so``. A file lock makes parallel test
workers wait for one build instead of racing.

    python -m plugins.builder [--archs 86-real] [--tensorrt-root /opt/TensorRT] [--force]
    python -m plugins.builder --cuda-root /usr/local/cuda-12.6     # CUDA 12 TensorRT stacks (JetPack 6)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
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
# SASS for Turing, Ampere (+ Jetson Orin 87), Ada, Hopper, Blackwell B200/GB200 (100), B300 (103), Jetson
# Thor (110), Blackwell RTX (120) and DGX Spark / GB10 (121); PTX of the newest one the toolkit has (JIT on
# later GPUs). A toolkit without some of them (CUDA 12.x) builds the ones it lists.
WANTED_SMS: tuple[int, ...] = (75, 80, 86, 87, 89, 90, 100, 103, 110, 120, 121)
DEFAULT_ARCHS = "75-real;80-real;86-real;87-real;89-real;90-real;100-real;103-real;110-real;120-real;121"
SOURCE_SUFFIXES = (".h", ".cuh", ".cu", ".cpp", ".map")
CACHE_ENTRIES_KEPT = 4


@dataclass(frozen=True)
class BuildSettings:
    """What to build and where (``python -m plugins.builder`` fills it from its flags).

    Args:
        build_dir: where the cache and the published libraries live (default ``build/plugins``).
        archs: CMake CUDA architectures; default: ``WANTED_SMS`` as far as the toolkit has them.
        tensorrt_root: a TensorRT SDK to compile against; default $TENSORRT_ROOT, else our ABI declarations.
        cuda_root: the CUDA toolkit to build with (e.g. a CUDA 12 one for JetPack 6); default: nvcc on PATH.
        force: rebuild even when the cache has this key.
        verbose: stream the compiler output instead of writing it to the log only.
        jobs: parallel compile jobs (default: all cores).
    """

    build_dir: Path | None = None
    archs: str | None = None
    tensorrt_root: Path | None = None
    cuda_root: Path | None = None
    force: bool = False
    verbose: bool = False
    jobs: int | None = None


@dataclass(frozen=True)
class BuildResult:
    """Where the build put its libraries and whether the cache served it."""

    library: Path  # build/plugins/libpem_plugins.so
    hostref: Path  # build/plugins/libpem_plugins_hostref.so
    key: str
    cached: bool
    seconds: float
    tensorrt_include: Path | None  # the SDK headers compiled against, None for our ABI declarations
    archs: str = DEFAULT_ARCHS  # the CMake architecture list built


def source_files() -> list[Path]:
    """Every file that goes into the build, sorted (the Python files and tools are not part of it)."""
    files = [p for p in PLUGIN_DIR.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES]
    files = [
        p for p in files if "__pycache__" not in p.parts and "tools" not in p.relative_to(PLUGIN_DIR).parts
    ]
    return sorted([*files, PLUGIN_DIR / "CMakeLists.txt"])


def find_nvcc(cuda_root: str | os.PathLike[str] | None = None) -> Path:
    """nvcc of ``cuda_root`` (e.g. /usr/local/cuda-12.6), else $CUDACXX, PATH or /usr/local/cuda."""
    if cuda_root is not None:
        nvcc = Path(cuda_root) / "bin" / "nvcc"
        if not nvcc.is_file():
            raise PemError(
                f"--cuda-root {cuda_root} has no bin/nvcc: point it at a CUDA toolkit (12.0 or newer)"
            )
        return nvcc.resolve()
    for candidate in (os.environ.get("CUDACXX"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise PemError("nvcc not found: install the CUDA toolkit (12.8 or newer) or set CUDACXX=/path/to/nvcc")


def toolkit_sms(nvcc: Path) -> set[int]:
    """The SM versions ``nvcc`` can compile SASS for (``nvcc --list-gpu-code``)."""
    out = subprocess.run([str(nvcc), "--list-gpu-code"], capture_output=True, text=True, check=False).stdout
    return {int(m) for m in re.findall(r"^sm_(\d+)$", out, flags=re.M)}


def default_archs(nvcc: Path) -> str:
    """SASS for every SM in ``WANTED_SMS`` the toolkit has, PTX for the newest of them (CMake syntax)."""
    listed = toolkit_sms(nvcc)
    if not listed:
        return DEFAULT_ARCHS  # an nvcc without --list-gpu-code: let CMake say what it lacks
    sms = [sm for sm in WANTED_SMS if sm in listed]
    if not sms:
        raise PemError(
            f"{nvcc} compiles for none of sm_{', sm_'.join(map(str, WANTED_SMS))}: use CUDA 12 or newer"
        )
    return ";".join([f"{sm}-real" for sm in sms[:-1]] + [str(sms[-1])])


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


def _compile(
    entry: Path, nvcc: Path, arch_list: str, trt_include: Path | None, settings: BuildSettings
) -> None:
    """Configure and build with CMake into ``entry``, keeping the two libraries and the log."""
    cmake = _tool("cmake", "install CMake 3.24 or newer (apt-get install cmake, or pip install cmake)")
    tree = entry / "cmake"
    shutil.rmtree(entry, ignore_errors=True)
    tree.mkdir(parents=True)
    log = entry / "build.log"
    configure = [cmake, "-S", str(PLUGIN_DIR), "-B", str(tree), f"-DCMAKE_CUDA_COMPILER={nvcc}"]
    configure += [f"-DPEM_CUDA_ARCHS={arch_list}", f"-DTENSORRT_ROOT={trt_include or ''}"]
    configure += [f"-DCUDAToolkit_ROOT={nvcc.parents[1]}"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    _run_logged(configure, log, settings.verbose)
    jobs = str(settings.jobs or os.cpu_count() or 2)
    _run_logged([cmake, "--build", str(tree), "--parallel", jobs], log, settings.verbose)
    shutil.copy2(tree / LIBRARY_NAME, entry / LIBRARY_NAME)
    shutil.copy2(tree / HOSTREF_NAME, entry / HOSTREF_NAME)
    shutil.rmtree(tree, ignore_errors=True)


def build(settings: BuildSettings | None = None) -> BuildResult:
    """Build (or fetch from the cache) the plugin library and the host test library."""
    settings = settings or BuildSettings()
    start = time.monotonic()
    out_dir = settings.build_dir or DEFAULT_BUILD_DIR
    nvcc = find_nvcc(settings.cuda_root)
    arch_list = settings.archs or default_archs(nvcc)
    trt_include = find_tensorrt_include(settings.tensorrt_root)
    key = build_key(nvcc, arch_list, trt_include)
    entry = out_dir / "cache" / key
    library, hostref = entry / LIBRARY_NAME, entry / HOSTREF_NAME
    with _locked(out_dir / ".build.lock"):
        cached = not settings.force and library.is_file() and hostref.is_file()
        if not cached:
            _compile(entry, nvcc, arch_list, trt_include, settings)
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
        archs=arch_list,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build-plugins", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--build-dir", type=Path, default=None, help="default: build/plugins")
    parser.add_argument(
        "--archs",
        default=None,
        help=f"CMake CUDA architectures (default: {DEFAULT_ARCHS}, as far as nvcc has them)",
    )
    parser.add_argument(
        "--tensorrt-root", type=Path, default=None, help="TensorRT SDK root (default: $TENSORRT_ROOT)"
    )
    parser.add_argument(
        "--cuda-root",
        type=Path,
        default=None,
        help="CUDA toolkit to build with, e.g. /usr/local/cuda-12.6 for CUDA 12 TensorRT stacks (JetPack 6)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache has this build")
    parser.add_argument("--verbose", action="store_true", help="show the compiler output")

    def body(args: argparse.Namespace) -> int:
        settings = BuildSettings(
            build_dir=args.build_dir,
            archs=args.archs,
            tensorrt_root=args.tensorrt_root,
            cuda_root=args.cuda_root,
            force=args.force,
            verbose=args.verbose,
        )
        report(build(settings))
        return 0

    return run_command("build-plugins", parser, body, argv)


def report(result: BuildResult) -> None:
    """Where the library is, its architectures and the driver it needs."""
    from pem_rt.driver import describe_requirement, library_cuda_runtime

    headers = result.tensorrt_include or "our ABI declarations (plugins/common/trt_abi)"
    how = "cache hit" if result.cached else "built"
    archs = cuda_architectures(result.library)
    print(f"{result.library} ({how} {result.key}, {result.seconds:.1f} s, headers: {headers})")
    print(f"  SASS for sm_{', sm_'.join(map(str, archs['sass']))}; PTX for {archs['ptx']}")
    runtime = library_cuda_runtime(result.library)
    if runtime is not None:
        print(f"  {describe_requirement(runtime)}")


if __name__ == "__main__":
    sys.exit(main())
