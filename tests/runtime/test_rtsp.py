"""A real RTSP server on 127.0.0.1 (tests/runtime/rtsp_server.py: ffmpeg encoding, RTSP over TCP) is killed
while `pem stream` reads it: the stream reconnects with back-off when the server comes back, and ends
with one clear line when it does not. Loopback only, bounded in time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from .conftest import REPO, Run, assert_one_error_line, stream_env
from .rtsp_server import RtspServer


def _wait_for(server: RtspServer, frames: int, proc: subprocess.Popen[str], timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while server.frames_sent < frames:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the stream received only {server.frames_sent} frames"
        time.sleep(0.05)


def _start(url: str, model: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(REPO / "runtime" / "stream.py"), "--source", url, "--onnx", str(model),
           "--headless", *args]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=stream_env())


def test_reconnects_after_the_server_is_killed_and_restarted(
    clip: Path, ffmpeg: str, semantic_onnx: Path, tmp_path: Path
) -> None:
    metrics = tmp_path / "m.json"
    server = RtspServer(clip, ffmpeg, workdir=tmp_path)
    server.start()
    proc = _start(
        server.url, semantic_onnx, "--frames", "35", "--reconnect-timeout", "30", "--metrics", str(metrics)
    )
    try:
        _wait_for(server, 12, proc)
        server.stop()  # the camera crashes ...
        time.sleep(1.0)
        server.start()  # ... and comes back on the same address
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        server.stop()
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err
    assert "lost after" in out and "reconnecting" in out and "reconnected after" in out, out
    m = json.loads(metrics.read_text())
    assert m["frames"] == 35 and m["reconnects"] == 1 and m["live"] is True


def test_a_stream_that_never_comes_back_ends_with_one_line(
    clip: Path, ffmpeg: str, semantic_onnx: Path, tmp_path: Path
) -> None:
    server = RtspServer(clip, ffmpeg, workdir=tmp_path)
    server.start()
    proc = _start(server.url, semantic_onnx, "--reconnect-timeout", "2")
    try:
        _wait_for(server, 5, proc)
        server.stop()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        server.stop()
    line = assert_one_error_line(Run(proc.returncode, out, err), server.url, "did not come back within 2 s")
    assert "--reconnect-timeout" in line


def test_unreachable_stream_is_one_line(semantic_onnx: Path) -> None:
    from .rtsp_server import free_port

    url = f"rtsp://127.0.0.1:{free_port()}/live"
    done = subprocess.run(
        [sys.executable, str(REPO / "runtime" / "stream.py"), "--source", url, "--onnx", str(semantic_onnx),
         "--headless"],
        capture_output=True, text=True, env=stream_env(), timeout=60,
    )  # fmt: skip
    assert_one_error_line(Run(done.returncode, done.stdout, done.stderr), url, "cannot connect")
