"""`pem doctor [--for stream|build|train]`: one table of what this machine can do, and what to fix.

Each row is a check: what was found, ok / warn / FAIL, and the fix. ``--for`` names a workflow; the
command exits 1 when a row that workflow needs failed (without ``--for``: when any row failed). Nothing
here imports torch or initialises CUDA: versions come from package metadata, the GPU from nvidia-smi
(or the Jetson's device tree), the plugin library's GPU code from its ELF file. ``--root DIR`` reads
the system files (/etc/nv_tegra_release, /proc/device-tree/model, /dev) under DIR instead of /, which
is how the tests describe a Jetson.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import importlib.util
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pem_rt.command import run_command
from pem_rt.cuda_elf import cuda_architectures, runs_on
from pem_rt.errors import PemError

WORKFLOWS = ("stream", "build", "train")
# plugins.loader.default_library(): the pem_rt core does not import the plugins package
DEFAULT_PLUGINS = Path(__file__).resolve().parents[1] / "build" / "plugins" / "libpem_plugins.so"
MIN_DRIVER = (580, 0)  # CUDA 13 (the plugin library's nvcc); older drivers cannot load its code
# Jetson modules by /proc/device-tree/model -> (name, compute capability as SM number)
JETSON_GPUS = (("Thor", 110), ("Orin", 87), ("Xavier", 72), ("Nano", 53), ("TX2", 62))
JETPACK = {"36": "JetPack 6", "35": "JetPack 5", "38": "JetPack 7", "32": "JetPack 4"}


@dataclass(frozen=True)
class Row:
    check: str
    status: str  # "ok", "warn", "FAIL", "info"
    found: str
    fix: str = ""
    needed_for: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Gpu:
    name: str
    sm: int  # compute capability as 86, 87, 90, 110...
    driver: str = ""  # empty on Jetson (the driver is part of L4T)


@dataclass(frozen=True)
class Jetson:
    model: str
    release: str  # "R36.3.0"
    jetpack: str  # "JetPack 6"


@dataclass
class Machine:
    """What the checks look at; :func:`probe` fills it from this machine."""

    root: Path = Path("/")
    gpu: Gpu | None = None
    jetson: Jetson | None = None
    plugins: Path = DEFAULT_PLUGINS
    cameras: list[str] = field(default_factory=list)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def read_jetson(root: Path) -> Jetson | None:
    """A Jetson from /etc/nv_tegra_release ("# R36 (release), REVISION: 3.0, ...") and its model name."""
    release_file = root / "etc" / "nv_tegra_release"
    if not release_file.is_file():
        return None
    text = release_file.read_text(errors="replace")
    major = re.search(r"R(\d+)", text)
    revision = re.search(r"REVISION:\s*([\d.]+)", text)
    release = f"R{major[1]}.{revision[1]}" if major and revision else (f"R{major[1]}" if major else "unknown")
    model_file = root / "proc" / "device-tree" / "model"
    model = model_file.read_text(errors="replace").strip("\0\n ") if model_file.is_file() else "Jetson"
    return Jetson(model, release, JETPACK.get(major[1] if major else "", "JetPack (unknown release)"))


def jetson_gpu(jetson: Jetson) -> Gpu:
    for name, sm in JETSON_GPUS:
        if name.lower() in jetson.model.lower():
            return Gpu(f"{jetson.model} (integrated)", sm)
    return Gpu(f"{jetson.model} (integrated)", 87)


def nvidia_smi_gpu() -> Gpu | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.splitlines()
        name, driver, cap = (v.strip() for v in out[0].split(","))
        major, minor = cap.split(".")
        return Gpu(name, int(major) * 10 + int(minor), driver)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def probe(root: Path = Path("/"), plugins: Path | None = None) -> Machine:
    jetson = read_jetson(root)
    gpu = jetson_gpu(jetson) if jetson else (nvidia_smi_gpu() if root == Path("/") else None)
    cameras = (
        sorted(str(p.relative_to(root)) for p in (root / "dev").glob("video*"))
        if (root / "dev").is_dir()
        else []
    )
    return Machine(root, gpu, jetson, plugins or DEFAULT_PLUGINS, ["/" + c for c in cameras])


# the checks ---------------------------------------------------------------------------------------------
def check_python(m: Machine) -> list[Row]:
    v = sys.version_info
    ok = v >= (3, 10)
    venv = sys.prefix != sys.base_prefix
    rows = [
        Row(
            "Python",
            "ok" if ok else "FAIL",
            f"{platform.python_version()} ({sys.executable})",
            "" if ok else "PEM-RT needs Python 3.10 or newer",
            frozenset(WORKFLOWS),
        )
    ]
    pem = _version("pem-rt")
    rows.append(
        Row(
            "PEM-RT",
            "ok" if pem else "warn",
            f"{pem or 'not installed'} ({Path(__file__).parents[1]})",
            "" if pem else "pip install -e '.[runtime]' (or `make install`)",
        )
    )
    if m.jetson is not None:
        rows += check_jetson_env(m.jetson, venv)
    return rows


def _system_site_packages() -> bool:
    cfg = Path(sys.prefix) / "pyvenv.cfg"
    if not cfg.is_file():
        return True
    return bool(re.search(r"include-system-site-packages\s*=\s*true", cfg.read_text(), re.IGNORECASE))


def check_jetson_env(jetson: Jetson, venv: bool) -> list[Row]:
    rows = [Row("Jetson", "info", f"{jetson.model}, L4T {jetson.release} ({jetson.jetpack})")]
    if jetson.jetpack == "JetPack 6" and sys.version_info[:2] != (3, 10):
        rows.append(
            Row(
                "Jetson Python",
                "warn",
                f"Python {platform.python_version()}",
                "JetPack 6's TensorRT and OpenCV are built for the system python3.10: `make install` "
                "picks it on a Jetson",
                frozenset(WORKFLOWS),
            )
        )
    if venv and not _system_site_packages():
        rows.append(
            Row(
                "Jetson venv",
                "FAIL",
                f"{sys.prefix} hides the system packages",
                "JetPack's TensorRT and GStreamer OpenCV live in the system site-packages: recreate "
                "the venv with `make install` (python3 -m venv --system-site-packages)",
                frozenset(("stream", "build")),
            )
        )
    return rows


def check_torch(m: Machine) -> list[Row]:
    version = _version("torch")
    fix = "" if version else "pip install -e '.[train]' (training only; the runtime never needs torch)"
    return [
        Row(
            "torch (optional)",
            "ok" if version else "FAIL",
            version or "not installed",
            fix,
            frozenset({"train"}),
        )
    ]


def check_onnxruntime(m: Machine) -> list[Row]:
    version = _version("onnxruntime") or _version("onnxruntime-gpu")
    if version is None or not _importable("onnxruntime"):
        return [
            Row(
                "ONNX Runtime",
                "warn",
                "not installed",
                "pip install onnxruntime (CPU inference, calibration)",
            )
        ]
    import onnxruntime as ort

    providers = ", ".join(p.replace("ExecutionProvider", "") for p in ort.get_available_providers())
    return [Row("ONNX Runtime", "ok", f"{version} ({providers})")]


def _tensorrt_version(module: str) -> str | None:
    if not _importable(module):
        return None
    try:
        return str(importlib.import_module(module).__version__)
    except Exception as e:  # a broken install is a finding, not a crash
        return f"broken ({type(e).__name__}: {str(e).splitlines()[0][:80]})"


def check_tensorrt(m: Machine) -> list[Row]:
    classic, rtx = _tensorrt_version("tensorrt"), _tensorrt_version("tensorrt_rtx")
    found = ", ".join(f"{n} {v}" for n, v in (("TensorRT", classic), ("TensorRT-RTX", rtx)) if v)
    if not found:
        if m.jetson is not None:
            fix = "JetPack's TensorRT is in the system python3.10: recreate the venv with `make install`"
        else:
            fix = (
                "pip install tensorrt-rtx-cu13 (RTX GPUs, builds on any machine) or classic TensorRT from NGC"
            )
        return [Row("TensorRT", "FAIL", "not installed", fix, frozenset({"build"}))]
    broken = "broken" in found
    return [
        Row(
            "TensorRT",
            "FAIL" if broken else "ok",
            found,
            "reinstall it (pip install --force-reinstall ...)" if broken else "",
            frozenset({"build"}),
        )
    ]


def check_gpu(m: Machine) -> list[Row]:
    if m.gpu is None:
        return [
            Row(
                "GPU",
                "info",
                "none found (no nvidia-smi, not a Jetson)",
                "engines run where a GPU is; here the stream runs ONNX Runtime on the CPU",
            )
        ]
    rows = [Row("GPU", "ok", f"{m.gpu.name}, compute capability {m.gpu.sm // 10}.{m.gpu.sm % 10}")]
    if m.gpu.driver:
        parts = tuple(int(p) for p in re.findall(r"\d+", m.gpu.driver)[:2])
        ok = parts >= MIN_DRIVER
        rows.append(
            Row(
                "driver",
                "ok" if ok else "FAIL",
                m.gpu.driver,
                "" if ok else f"update the NVIDIA driver to {MIN_DRIVER[0]} or newer (CUDA 13)",
                frozenset({"stream", "build"}) if not ok else frozenset(),
            )
        )
    return rows


def check_plugins(m: Machine) -> list[Row]:
    path = m.plugins
    if not path.is_file():
        how = (
            "make plugins (needs nvcc)"
            if shutil.which("nvcc")
            else "install the CUDA toolkit, then make plugins"
        )
        return [Row("plugin library", "FAIL", f"{path} not built", how, frozenset({"build"}))]
    try:
        archs = cuda_architectures(path)
    except (PemError, OSError, ValueError) as e:
        return [
            Row(
                "plugin library",
                "FAIL",
                f"{path}: unreadable ({e})",
                "rebuild it: make plugins",
                frozenset({"build"}),
            )
        ]
    code = (
        "SASS sm_"
        + ", sm_".join(map(str, archs["sass"]))
        + (f"; PTX sm_{', sm_'.join(map(str, archs['ptx']))}" if archs["ptx"] else "")
    )
    if m.gpu is None:
        return [Row("plugin library", "ok", f"{path.name}: {code} (no GPU here to match)")]
    if runs_on(archs, m.gpu.sm):
        return [Row("plugin library", "ok", f"{path.name}: {code}; runs on sm_{m.gpu.sm}")]
    fix = (
        f"built for other GPUs: rebuild for this one with `python -m plugins.builder --archs "
        f"'{m.gpu.sm}-real'` (or add {m.gpu.sm}-real to plugins.builder.DEFAULT_ARCHS and `make plugins`)"
    )
    return [
        Row(
            "plugin library",
            "FAIL",
            f"{path.name}: {code}; no code for sm_{m.gpu.sm}",
            fix,
            frozenset({"stream", "build"}),
        )
    ]


def check_opencv(m: Machine) -> list[Row]:
    if not _importable("cv2"):
        return [
            Row(
                "OpenCV",
                "FAIL",
                "not installed",
                "pip install opencv-python-headless (on a Jetson: "
                "JetPack's python3-opencv through a --system-site-packages venv)",
                frozenset({"stream"}),
            )
        ]
    import cv2

    info = cv2.getBuildInformation()
    backends = {
        name: bool(re.search(rf"^\s*{key}:\s*YES", info, re.MULTILINE | re.IGNORECASE))
        for name, key in (("FFmpeg", "FFMPEG"), ("GStreamer", "GStreamer"), ("V4L2", "v4l/v4l2"))
    }
    found = ", ".join(f"{n} {'yes' if ok else 'no'}" for n, ok in backends.items())
    where = Path(cv2.__file__).parent
    rows = [Row("OpenCV", "ok", f"{cv2.__version__} ({found}) from {where}")]
    if not backends["GStreamer"]:
        fix = "GStreamer pipelines and csi:// need a system OpenCV built with GStreamer"
        if m.jetson is not None and "site-packages" in str(where) and sys.prefix in str(where):
            fix = (
                "pip's OpenCV shadows JetPack's GStreamer build: pip uninstall opencv-python-headless "
                "opencv-python (make install does not install it on a Jetson)"
            )
        rows.append(
            Row(
                "GStreamer",
                "warn" if m.jetson is None else "FAIL",
                "not in this OpenCV",
                fix,
                frozenset() if m.jetson is None else frozenset({"stream"}),
            )
        )
    return rows


def check_video(m: Machine) -> list[Row]:
    rows = [
        Row(
            "cameras",
            "info",
            ", ".join(m.cameras) or "none (/dev/video*)",
            "" if m.cameras else "plug one in, or stream a file / rtsp:// URL",
        )
    ]
    av = _version("av")
    h264 = False
    if av and _importable("av"):
        import av as pyav

        try:
            pyav.codec.Codec("libx264", "w")
            h264 = True
        except Exception:  # PyAV raises its own error types for unknown codecs
            h264 = False
    rows.append(
        Row(
            "PyAV / H.264",
            "ok" if h264 else "warn",
            f"PyAV {av}, libx264 {'yes' if h264 else 'no'}" if av else "PyAV not installed",
            "" if h264 else "pip install av (recordings in H.264)",
        )
    )
    tools = [(n, shutil.which(n)) for n in ("ffmpeg", "ffprobe")]
    found = ", ".join(f"{n} {p}" for n, p in tools if p) or "none on PATH"
    rows.append(
        Row(
            "ffmpeg",
            "ok" if all(p for _, p in tools) else "info",
            found,
            "" if all(p for _, p in tools) else "apt-get install ffmpeg (to inspect recordings)",
        )
    )
    nvdec = _importable("PyNvVideoCodec")
    if m.gpu is not None:
        rows.append(
            Row(
                "GPU decode",
                "ok" if nvdec else "info",
                "PyNvVideoCodec" if nvdec else "OpenCV (CPU)",
                "" if nvdec else "pip install -e '.[gpu]' decodes rtsp:// and files with NVDEC",
            )
        )
    return rows


CHECKS: tuple[Callable[[Machine], list[Row]], ...] = (
    check_python,
    check_torch,
    check_onnxruntime,
    check_tensorrt,
    check_gpu,
    check_plugins,
    check_opencv,
    check_video,
)


def rows_for(m: Machine) -> list[Row]:
    rows: list[Row] = []
    for check in CHECKS:
        rows += check(m)
    rows += _backend_row(rows)
    return rows


def _backend_row(rows: list[Row]) -> list[Row]:
    """The stream needs one inference backend: ONNX Runtime, or TensorRT with a GPU."""
    status = {r.check: r.status for r in rows}
    if status.get("ONNX Runtime") == "ok" or (status.get("TensorRT") == "ok" and status.get("GPU") == "ok"):
        return []
    return [
        Row(
            "inference backend",
            "FAIL",
            "none usable",
            "pip install onnxruntime (or TensorRT on a GPU)",
            frozenset({"stream"}),
        )
    ]


def blocking(rows: Sequence[Row], workflow: str | None) -> list[Row]:
    """The failed rows that stop ``workflow`` (any failed row without one)."""
    return [r for r in rows if r.status == "FAIL" and (workflow is None or workflow in r.needed_for)]


def format_table(rows: Sequence[Row]) -> str:
    widths = [max(len(r.check) for r in rows), 4, min(70, max(len(r.found) for r in rows))]
    lines = [f"{'check':<{widths[0]}}  {'':<4}  {'found':<{widths[2]}}  fix"]
    for r in rows:
        lines.append(f"{r.check:<{widths[0]}}  {r.status:<4}  {r.found:<{widths[2]}}  {r.fix}".rstrip())
    return "\n".join(lines)


@dataclass(frozen=True)
class DoctorOptions:
    workflow: str | None
    root: Path
    plugins: Path | None


def run_doctor(options: DoctorOptions, out: Callable[[str], None] = print) -> int:
    rows = rows_for(probe(options.root, options.plugins))
    out(format_table(rows))
    blockers = blocking(rows, options.workflow)
    what = f"`{options.workflow}`" if options.workflow else "everything checked"
    if blockers:
        out(f"{what} cannot run here: fix {', '.join(r.check for r in blockers)} (see above)")
        return 1
    out(f"{what}: can run here" if options.workflow else "no failed checks")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pem doctor", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--for", dest="workflow", choices=WORKFLOWS, help="exit 1 when this workflow cannot run")
    p.add_argument("--plugins", type=Path, help=f"plugin library to check (default {DEFAULT_PLUGINS})")
    p.add_argument("--root", type=Path, default=Path("/"), help="read system files under this root (tests)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    def body(args: argparse.Namespace) -> int:
        return run_doctor(DoctorOptions(args.workflow, args.root, args.plugins))

    return run_command("doctor", build_parser(), body, argv)


if __name__ == "__main__":
    sys.exit(main())
