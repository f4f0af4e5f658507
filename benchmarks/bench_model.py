"""Whole model on CPU, per preset: PyTorch eager vs ONNX Runtime FP32 vs ORT FP16 vs ORT INT8 (Q/DQ),
same frame size, same frames. Weights are random (speed does not depend on them; INT8 ranges come from
real photographs). ORT FP16/INT8 on a CPU mostly measure conversion overhead: their gains are on GPUs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import median_ms

PRESETS = ("cityscapes-r50", "cityscapes-stdc1", "cityscapes-stdc2")


def measure(size: tuple[int, int], repeats: int, presets: tuple[str, ...] = PRESETS) -> list[dict[str, Any]]:
    import torch

    from calibration.calibrate import CalibrationConfig
    from calibration.frames import read_frames
    from export.calibrate import calibrate_for_tensorrt
    from export.deploy_model import DeployModel
    from export.export_onnx import export_onnx
    from export.precision import convert_fp16
    from pem_rt.ort_session import cpu_session
    from training.model import build_model, get_preset

    frames = read_frames("skimage", size, 4)
    rows = []
    for preset in presets:
        torch.manual_seed(0)
        model = build_model(get_preset(preset)).eval()
        deploy = DeployModel(model, "semantic").eval()
        frame = torch.from_numpy(frames[:1])
        row: dict[str, Any] = {"preset": preset, "size": f"{size[0]}x{size[1]}"}
        with torch.no_grad():
            row["torch_ms"] = median_ms(lambda d=deploy, f=frame: d(f), repeats)
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = Path(tmp) / "model.onnx"
            export_onnx(model, fp32, size, "semantic")
            fp16 = Path(tmp) / "model.fp16.onnx"
            convert_fp16(fp32, fp16, frames)
            int8 = Path(tmp) / "model.int8.onnx"
            calib = CalibrationConfig("skimage", "max", batches=4, cache=Path(tmp) / "model.calib")
            calibrate_for_tensorrt(fp32, int8, calib)
            for name, path in (("ort_fp32", fp32), ("ort_fp16", fp16), ("ort_int8", int8)):
                session = cpu_session(path)
                feed = {"image": frames[:1]}
                row[f"{name}_ms"] = median_ms(lambda s=session, x=feed: s.run(None, x), repeats)
        for name in ("ort_fp32", "ort_fp16", "ort_int8"):
            row[f"{name}_vs_torch"] = row["torch_ms"] / row[f"{name}_ms"]
        rows.append(row)
        print(
            f"  {preset} {row['size']}: ORT FP32 {row['ort_fp32_vs_torch']:.2f}x, FP16 "
            f"{row['ort_fp16_vs_torch']:.2f}x, INT8 {row['ort_int8_vs_torch']:.2f}x PyTorch eager",
            flush=True,
        )
    return rows
