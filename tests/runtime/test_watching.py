"""Watching a headless run: the live view loaded by a real browser (Debian's headless Chromium), the
Prometheus endpoint parsed with prometheus-client's own parser against the metrics JSON of the same run,
and the results file, one JSON line per frame. Real servers on 127.0.0.1, real `pem stream` processes."""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from runtime.live_view import parse_serve
from runtime.telemetry import bucket_bounds

from .conftest import REPO, RunStream, assert_one_error_line, stream_env
from .rtsp_server import free_port

BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")  # fmt: skip


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium not found: `make install` installs it (Debian/Ubuntu: apt-get install chromium)"
    return found


def _start(*args: str | Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(REPO / "runtime" / "stream.py"), "--headless", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=stream_env())


def _get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        data: bytes = answer.read()
        return data


def _wait(check: Any, proc: subprocess.Popen[str], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass  # not listening yet
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)
    finally:
        proc.kill()


def test_browser_sees_live_frames_side_by_side_with_the_legend(
    semantic_onnx: Path, tmp_path: Path, chromium: str
) -> None:
    port = free_port()
    proc = _start("--source", "synthetic:96x160", "--source", "synthetic:96x160@2", "--realtime",
                  "--onnx", semantic_onnx, "--serve", port)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: all(s["frames"] >= 3 for s in json.loads(_get(f"{base}/stats"))["sources"]), proc)
        frame = cv2.imdecode(np.frombuffer(_get(f"{base}/frame/1.jpg"), np.uint8), cv2.IMREAD_COLOR)
        assert frame.shape == (96, 160, 3)
        browse = [chromium, *BROWSER_FLAGS, "--window-size=1200,700", "--virtual-time-budget=4000"]
        shot = tmp_path / "page.png"
        subprocess.run([*browse, f"--user-data-dir={tmp_path / 'profile1'}", f"--screenshot={shot}",
                        base + "/"], capture_output=True, timeout=90, check=True)  # fmt: skip
        dom = subprocess.run([*browse, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", base + "/"],
                             capture_output=True, text=True, timeout=90, check=True).stdout  # fmt: skip
        stats = json.loads(_get(f"{base}/stats"))
    finally:
        out, err = _stop(proc)
    assert proc.returncode == 0 and "Traceback" not in err, out + err
    assert f"live view: {base}/" in out
    # the page: two tiles, the legend of every class with the share of those in view, live numbers
    assert dom.count('class="tile"') == 2 and 'src="/video/1.mjpg"' in dom
    assert all(f'data-class="{name}"' in dom for name in ("road", "car", "bicycle"))
    in_view = max(stats["sources"][0]["classes"], key=stats["sources"][0]["classes"].get)
    assert re.search(rf'<li data-class="{in_view}" class="">.*?<span class="share">[\d.]+ %</span>', dom)
    assert '<li data-class="bicycle" class="off">' in dom or in_view == "bicycle"
    assert "FPS, latency" in dom and "connecting" not in dom
    # the screenshot: both tiles show a frame (the street: many colours), not the empty placeholder
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (700, 1200)
    for x0, x1 in ((10, 400), (520, 900)):
        tile = image[20:250, x0:x1].reshape(-1, 3)
        assert len(np.unique(tile // 16, axis=0)) > 40, "no frame in the tile"


def test_prometheus_counters_match_the_metrics_json_of_the_same_run(
    semantic_onnx: Path, tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    port, metrics, results = free_port(), tmp_path / "m.json", tmp_path / "frames.jsonl"
    proc = _start("--source", "synthetic:96x160", "--source", "synthetic:96x160@1", "--onnx", semantic_onnx,
                  "--frames", 9, "--metrics", metrics, "--metrics-port", port, "--linger", 60,
                  "--results", results)  # fmt: skip
    try:
        _wait(metrics.exists, proc)  # written when the stream ends; the endpoint lingers
        text = _get(f"http://127.0.0.1:{port}/metrics").decode()
    finally:
        out, err = _stop(proc)
    assert proc.returncode == 0 and out.strip().splitlines()[-1] == "stream: PASSED", out + err
    families = {f.name: f for f in text_string_to_metric_families(text)}
    report = json.loads(metrics.read_text())

    def value(family: str, source: int, suffix: str = "_total", **labels: str) -> float:
        for sample in families[family].samples:
            wanted = {"source": str(source), **labels}
            if sample.name == family + suffix and all(sample.labels.get(k) == v for k, v in wanted.items()):
                return float(sample.value)
        raise AssertionError(f"no {family}{suffix} for source {source}")

    for i, src in enumerate(report["sources"]):
        for key in ("frames", "captured", "dropped", "reconnects"):
            assert value(f"pem_{key}", i) == src[key], key
        assert value("pem_decode_errors", i) == 0
        assert value("pem_fps", i, "") == pytest.approx(src["fps"], abs=1e-3)
        for stage, summary in src["latency_ms"].items():
            count = value("pem_stage_latency_ms", i, "_count", stage=stage)
            assert count == summary["count"], stage
            if count:
                total = value("pem_stage_latency_ms", i, "_sum", stage=stage)
                assert total == pytest.approx(summary["mean"] * count, rel=1e-3, abs=1e-2)
                le = [s for s in families["pem_stage_latency_ms"].samples if s.name.endswith("_bucket")
                      and s.labels["source"] == str(i) and s.labels["stage"] == stage]  # fmt: skip
                assert len(le) == len(bucket_bounds()) and le[-1].value == count
                k = next(
                    k for k, s in enumerate(le) if s.value >= math.ceil(count / 2)
                )  # the median's bucket
                lower = float(le[k - 1].labels["le"]) if k else 0.0
                assert lower * 0.99 - 1e-3 <= summary["p50"] <= float(le[k].labels["le"]) * 1.01 + 1e-3
    batches = next(s for s in families["pem_batches"].samples if s.name == "pem_batches_total")
    assert batches.value == report["batches"]
    sizes = next(s for s in families["pem_batch_size"].samples if s.name == "pem_batch_size_count")
    assert sizes.value == report["batches"]
    # the results of the same run: one valid JSON line per processed frame
    lines = results.read_text().splitlines()
    assert len(lines) == report["frames"] == 18
    records = [json.loads(line) for line in lines]
    assert sorted((r["source"], r["frame"]) for r in records) == [(s, f) for s in (0, 1) for f in range(9)]
    assert all(abs(sum(r["classes"].values()) - 1.0) < 0.02 for r in records)  # void aside, shares sum to 1


def test_results_to_stdout_with_panoptic_segments(panoptic_onnx: Path, run_stream: RunStream) -> None:
    run = run_stream("--source", "synthetic:96x160", "--onnx", panoptic_onnx, "--headless", "--frames", 4,
                     "--results", "-")  # fmt: skip
    assert run.code == 0, run.output
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 4, run.stdout  # only the results: messages and the verdict went to stderr
    assert run.stderr.strip().splitlines()[-1] == "stream: PASSED", run.stderr
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == [0, 1, 2, 3]
    for r in records:
        assert set(r) >= {"time", "source", "source_name", "frame", "latency_ms", "classes", "segments"}
        for s in r["segments"]:
            x, y, w, h = s["bbox"]
            assert 0 <= x < x + w <= 160 and 0 <= y < y + h <= 96 and 0 < s["area"] <= w * h
    assert "frames, " in run.stderr  # the summary line


def test_segment_boxes_and_class_shares() -> None:
    from runtime.results import class_shares, segment_boxes

    panoptic = np.zeros((6, 8), np.int32)
    panoptic[1:3, 2:5] = 1
    panoptic[4:6, 0:1] = 2
    area, boxes = segment_boxes(panoptic, 2)
    assert (
        area[1:].tolist() == [6, 2]
        and boxes[1].tolist() == [2, 1, 3, 2]
        and boxes[2].tolist() == [0, 4, 1, 2]
    )
    labels = np.array([[0, 0, 1, 255]], np.uint8)
    assert class_shares(labels, ("road", "car")) == {"road": 0.5, "car": 0.25}


def test_bad_addresses_are_one_line(semantic_onnx: Path, run_stream: RunStream) -> None:
    assert parse_serve("8080") == ("127.0.0.1", 8080) and parse_serve("0.0.0.0:81") == ("0.0.0.0", 81)
    assert_one_error_line(run_stream("--onnx", semantic_onnx, "--headless", "--serve", "x:y"), "--serve x:y")
    busy = free_port()
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        run = run_stream("--onnx", semantic_onnx, "--headless", "--frames", 1, "--metrics-port", busy)
    assert_one_error_line(run, f"--metrics-port {busy}", "cannot listen")
