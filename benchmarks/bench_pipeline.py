"""Stream pipeline vs bare backend (target: >= 0.95x), and per-stage latency of `pem stream`.

Uses the runtime's own benchmark functions (benchmarks/stream_throughput.py): the same ONNX Runtime backend
object on the same synthetic frames, bare `backend.infer` loops and full pipeline runs back to back,
the median of the paired ratios reported. The model is the tiny preset exported at 128x256.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def measure(quick: bool = False) -> dict[str, Any]:
    import torch

    from benchmarks.stream_throughput import bare, pipeline
    from export.export_onnx import export_onnx
    from pem_rt.synthetic import SyntheticScene
    from runtime.backends import open_backend
    from runtime.segmenter import Segmenter
    from training.model import build_model, get_preset

    frames_per_run, repeats = (60, 3) if quick else (150, 5)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "tiny.onnx"
        torch.manual_seed(0)
        export_onnx(build_model(get_preset("cityscapes-tiny")).eval(), onnx_path, (128, 256), "semantic")
        backend = open_backend(onnx=onnx_path, log=lambda _: None)
        segmenter = Segmenter.from_backend(backend)
        scene = SyntheticScene(128, 256)  # the model's size: both loops get the very same frames
        frames = [scene.frame(i) for i in range(32)]
        images = [segmenter.letterbox.apply(f)[0].copy()[None] for f in frames]
        bare(backend, images, 10)
        pipeline(segmenter, frames, 10, None)
        bare_fps, pipe_fps = [], []
        for _ in range(repeats):
            bare_fps.append(bare(backend, images, frames_per_run))
            pipe_fps.append(pipeline(segmenter, frames, frames_per_run, None))
        backend.close()
        metrics_path = Path(tmp) / "metrics.json"
        subprocess.run(
            [sys.executable, "runtime/stream.py", "--source", "synthetic:128x256", "--onnx", str(onnx_path),
             "--headless", "--frames", str(frames_per_run), "--metrics", str(metrics_path)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        metrics = json.loads(metrics_path.read_text())
    ratio = statistics.median(p / b for p, b in zip(pipe_fps, bare_fps, strict=True))
    result = {
        "bare_fps": statistics.median(bare_fps),
        "pipeline_fps": statistics.median(pipe_fps),
        "ratio": ratio,
        "stream_metrics": metrics,
    }
    stages = metrics.get("latency_ms", metrics.get("stages", {}))
    stage_rows = [
        f"| {name} | {v.get('p50', float('nan')):.1f} | {v.get('p90', float('nan')):.1f} | "
        f"{v.get('p99', float('nan')):.1f} |"
        for name, v in stages.items()
        if isinstance(v, dict)
    ]
    result["markdown"] = "\n".join(
        [
            f"Tiny model, 128x256 input and synthetic frames, ONNX Runtime CPU: bare backend "
            f"{result['bare_fps']:.1f} FPS, pipeline {result['pipeline_fps']:.1f} FPS, "
            f"**pipeline/bare {ratio:.3f}x** (median of {repeats} paired repeats).",
            "",
            "| stage (pem stream --metrics) | p50 ms | p90 ms | p99 ms |",
            "|---|---|---|---|",
            *stage_rows,
        ]
    )
    print(
        f"  pipeline/bare {ratio:.3f}x ({result['pipeline_fps']:.1f} vs {result['bare_fps']:.1f} FPS)",
        flush=True,
    )
    return result
