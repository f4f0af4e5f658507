"""`pem doctor`: the table of this machine, exit 1 when the workflow asked for cannot run, and the right
row with the fix for a plugin library built for other GPUs, a missing TensorRT, and a Jetson (described
by its system files under --root) whose venv hides JetPack's packages. Also the Jetson venv logic of
`make install`, on a simulated system python with a system-installed package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pem_rt.doctor import DEFAULT_PLUGINS, Machine, blocking, check_plugins, read_jetson, rows_for
from pem_rt.setup_env import shadowed

REPO = Path(__file__).resolve().parents[1]


def doctor(
    *args: str | Path, python: str = sys.executable, env: dict[str, str] | None = None
) -> tuple[int, str]:
    done = subprocess.run(
        [python, "-m", "pem_rt.cli", "doctor", *map(str, args)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env=env or {**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def jetson_root(tmp_path: Path, model: str, release: str = "# R36 (release), REVISION: 3.0, GCID: 1") -> Path:
    root = tmp_path / model.replace(" ", "_")
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "nv_tegra_release").write_text(release + "\n")
    (root / "proc" / "device-tree").mkdir(parents=True)
    (root / "proc" / "device-tree" / "model").write_text(model + "\0")
    (root / "dev").mkdir()
    (root / "dev" / "video0").touch()
    return root


def row(output: str, check: str) -> str:
    gap = " " if check.startswith("`") else "  "  # table rows pad the check column
    lines = [line for line in output.splitlines() if line.startswith(check + gap)]
    assert len(lines) == 1, output
    return lines[0]


def test_this_machine_gets_a_correct_table() -> None:
    code, out = doctor()
    assert "Traceback" not in out and out.strip().splitlines()[-1] == "doctor: PASSED", out
    assert code == 0
    assert sys.version.split()[0] in row(out, "Python")
    assert "none found" in row(out, "GPU")  # no NVIDIA GPU on this machine
    assert "TensorRT-RTX" in row(out, "TensorRT") and " ok " in row(out, "TensorRT")
    assert "CPU" in row(out, "ONNX Runtime")
    opencv = row(out, "OpenCV")
    assert "FFmpeg yes" in opencv and "GStreamer no" in opencv and "V4L2 yes" in opencv
    assert "libx264 yes" in row(out, "PyAV / H.264")
    if DEFAULT_PLUGINS.is_file():
        assert "sm_86" in row(out, "plugin library") and "no GPU here" in row(out, "plugin library")
    for workflow in ("stream", "build", "train"):
        code, out = doctor("--for", workflow)
        assert code == 0 and f"`{workflow}`: can run here" in out, out


def test_a_plugin_library_built_for_other_gpus_is_named_with_the_fix(tmp_path: Path) -> None:
    """The default library has SASS from sm_75 up and PTX for the newest: a Jetson AGX Xavier (sm_72) cannot
    run it, a Jetson Orin (sm_87) can."""
    if not DEFAULT_PLUGINS.is_file():
        pytest.fail(f"{DEFAULT_PLUGINS} missing: build it with `make plugins`")
    xavier = jetson_root(tmp_path, "NVIDIA Jetson AGX Xavier Developer Kit", "# R35 (release), REVISION: 5.0")
    code, out = doctor("--root", xavier, "--for", "build")
    assert code == 1 and "Traceback" not in out
    plugin = row(out, "plugin library")
    assert "FAIL" in plugin and "no code for sm_72" in plugin and "--archs '72-real'" in plugin
    verdict = row(out, "`build`")  # this venv hides system packages too: "fix Jetson venv, plugin library"
    assert verdict.startswith("`build` cannot run here: fix") and "plugin library" in verdict
    assert "JetPack 5" in row(out, "Jetson") and "/dev/video0" in row(out, "cameras")
    orin = jetson_root(tmp_path, "NVIDIA Jetson AGX Orin Developer Kit")
    rows = rows_for(Machine(orin, None, read_jetson(orin), DEFAULT_PLUGINS))
    assert not [r for r in rows if r.check == "plugin library" and r.status == "FAIL"]


def test_missing_tensorrt_says_what_to_install(tmp_path: Path) -> None:
    """A real environment without TensorRT (a bare venv of this Python, only PEM-RT on its path)."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    code, out = doctor("--for", "build", python=python, env=env)
    assert code == 1 and "Traceback" not in out, out
    assert "FAIL" in row(out, "TensorRT") and "pip install tensorrt-rtx-cu13" in row(out, "TensorRT")
    code, out = doctor("--for", "stream", python=python, env=env)
    assert code == 1 and "pip install opencv-python-headless" in row(out, "OpenCV")
    assert "pip install onnxruntime" in row(out, "inference backend")
    jetson = jetson_root(tmp_path, "NVIDIA Jetson Orin Nano Developer Kit")
    code, out = doctor("--root", jetson, "--for", "build", python=python, env=env)
    assert code == 1 and "JetPack's TensorRT is in the system python3.10" in row(out, "TensorRT")
    assert "--system-site-packages" in row(out, "Jetson venv")  # the bare venv hides the system packages


def test_check_plugins_on_an_unreadable_library(tmp_path: Path) -> None:
    bad = tmp_path / "libpem_plugins.so"
    bad.write_bytes(b"not an ELF file")
    (r,) = check_plugins(Machine(plugins=bad))
    assert r.status == "FAIL" and "rebuild it" in r.fix and blocking([r], "build") == [r]
    (r,) = check_plugins(Machine(plugins=tmp_path / "missing.so"))
    assert r.status == "FAIL" and "make plugins" in r.fix


def _system_python(tmp_path: Path) -> Path:
    """A "system" python: this interpreter's binary and standard library under a root of our own, whose
    site-packages holds what the system installed (here: JetPack's OpenCV, simulated as a cv2 package)."""
    root = tmp_path / "system"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lib = root / "lib" / stdlib.name
    (lib / "site-packages" / "cv2").mkdir(parents=True)
    (lib / "site-packages" / "cv2" / "__init__.py").write_text("BUILD = 'system, GStreamer: YES'\n")
    for entry in stdlib.iterdir():
        if entry.name != "site-packages":
            (lib / entry.name).symlink_to(entry)
    (root / "bin").mkdir()
    python = root / "bin" / Path(sys._base_executable).name  # type: ignore[attr-defined]
    shutil.copy2(os.path.realpath(sys._base_executable), python)  # type: ignore[attr-defined]
    return python


def test_jetson_venv_sees_the_system_packages_and_pip_opencv_is_removed(tmp_path: Path) -> None:
    """What `make install` does on a Jetson: a venv with --system-site-packages sees the system's cv2;
    a pip OpenCV inside the venv would shadow it, and `python -m pem_rt.setup_env` removes it."""
    python = _system_python(tmp_path)
    make = subprocess.run(["make", "-n", "-B", "install", f"TEGRA_RELEASE={REPO / 'Makefile'}"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "python3.10 -m venv --system-site-packages .venv" in make and "-e '.[jetson]'" in make
    assert "chromium" not in make and "python3.11" not in make
    venv = tmp_path / "venv"
    subprocess.run([str(python), "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    vpy = str(venv / "bin" / "python")
    seen = subprocess.run([vpy, "-c", "import cv2; print(cv2.BUILD)"], capture_output=True, text=True)
    assert seen.stdout.strip() == "system, GStreamer: YES", seen.stderr
    # pip's OpenCV in the venv (a wheel of our own making: a cv2 package and its dist-info)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "cv2").mkdir()
    (site / "cv2" / "__init__.py").write_text("BUILD = 'pip, GStreamer: NO'\n")
    dist = site / "opencv_python_headless-5.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: opencv-python-headless\nVersion: 5.0.0\n")
    (dist / "RECORD").write_text("cv2/__init__.py,,\nopencv_python_headless-5.0.0.dist-info/METADATA,,\n"
                                 "opencv_python_headless-5.0.0.dist-info/RECORD,,\n")  # fmt: skip
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    fixed = subprocess.run(
        [vpy, "-m", "pem_rt.setup_env"], capture_output=True, text=True, env=env, timeout=120
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "removed opencv-python-headless from the venv" in fixed.stdout, fixed.stdout
    seen = subprocess.run([vpy, "-c", "import cv2; print(cv2.BUILD)"], capture_output=True, text=True)
    assert seen.stdout.strip() == "system, GStreamer: YES"
    assert shadowed("cv2", str(venv), [str(site), str(python.parents[1] / "lib")]) is None
