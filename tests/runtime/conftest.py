"""Fixtures of the stream runtime tests: a short clip and an image folder from scikit-image's bundled
photographs, and a helper that runs `python runtime/stream.py` in a subprocess the way a user does. The
tiny exported models (semantic_onnx, panoptic_onnx, dynamic_semantic_onnx) are tests/conftest.py's."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from filelock import FileLock

from tests.conftest import shared_dir

REPO = Path(__file__).resolve().parents[2]


def photos(size: tuple[int, int]) -> list[np.ndarray]:
    """scikit-image's bundled photographs as BGR frames of ``size`` (h, w), centre-cropped to its aspect."""
    from skimage import data

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        loader = getattr(data, name, None)
        if loader is None:
            continue
        img = np.asarray(loader())
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        h, w = img.shape[:2]
        target = size[1] / size[0]
        if w / h > target:
            cw = int(h * target)
            img = img[:, (w - cw) // 2 : (w - cw) // 2 + cw]
        else:
            ch = int(w / target)
            img = img[(h - ch) // 2 : (h - ch) // 2 + ch]
        out.append(cv2.resize(img[:, :, :3][:, :, ::-1], (size[1], size[0]), interpolation=cv2.INTER_AREA))
    return out


def panning_frames(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``n`` frames panning across the photographs side by side (real image statistics, real motion)."""
    strip = np.concatenate(photos((size[0], size[1])), axis=1)
    step = max(1, (strip.shape[1] - size[1]) // max(1, n - 1))
    return [np.ascontiguousarray(strip[:, i * step : i * step + size[1]]) for i in range(n)]


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame 96x160 MPEG-4 clip at 10 FPS panning over real photographs."""
    path = shared_dir(tmp_path_factory, "shared_runtime") / "clip.mp4"
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            tmp = path.with_name("clip.partial.mp4")
            writer = cv2.VideoWriter(
                str(tmp), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (160, 96)
            )
            for frame in panning_frames(30, (96, 160)):
                writer.write(frame)
            writer.release()
            tmp.rename(path)
    return path


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, img in enumerate(photos((120, 180))):
        cv2.imwrite(str(folder / f"img_{i:02d}.png"), img)
    return folder


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    """The ffmpeg binary of the imageio-ffmpeg wheel (the dev extra installs it; no apt needed)."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def stream_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("DISPLAY", None)
    env["PEM_RUNS"] = env.get("PEM_RUNS", str(REPO / "runs"))
    return env


RunStream = Callable[..., Run]


@pytest.fixture
def run_stream() -> RunStream:
    """Run `python runtime/stream.py ARGS` like a user does; returns exit code and output."""

    def run(*args: str | Path, timeout: float = 120, env: dict[str, str] | None = None) -> Run:
        cmd = [sys.executable, str(REPO / "runtime" / "stream.py"), *map(str, args)]
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env or stream_env(),
            stdin=subprocess.DEVNULL,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    return run


def assert_one_error_line(run: Run, *phrases: str) -> str:
    """A failed run: exit 1, no traceback, exactly one `error:` line (containing ``phrases``), FAILED last."""
    assert run.code == 1, run.output
    assert "Traceback" not in run.output, run.output
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, run.output
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    assert run.stdout.strip().splitlines()[-1] == "stream: FAILED", run.output
    return errors[0]
