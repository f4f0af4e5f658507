"""`make demo` (or `pem demo`): the whole pipeline on a CPU-only machine in a few minutes.

Runs, each as its own `pem` command (the ones the README teaches): a synthetic Cityscapes-format
dataset -> training a tiny PEM -> evaluation -> ONNX export -> INT8 calibration -> FP16 and INT8
TensorRT-RTX engines built ahead of time with both plugins -> accuracy comparison of PyTorch / ONNX / FP16
/ INT8 -> a headless stream of the synthetic street through ONNX Runtime, recorded as an MP4 with the
segmentation overlay. Ends with where every artefact is. Torch-free itself: each step is a subprocess.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pem_rt.command import run_command
from pem_rt.errors import PemError

SIZE = "128x256"
# the tiny recipe the tests check (tests/conftest.py TINY_RECIPE): val mIoU ~0.74 in ~2 minutes on 2 cores
TRAIN = ["--preset", "cityscapes-tiny", "--crop", SIZE, "--base-size", "128", "--batch-size", "8",
         "--iters", "250", "--lr", "2e-3", "--warmup-iters", "20", "--points", "512", "--eval-every", "0",
         "--workers", "1", "--threads", "1"]  # fmt: skip


def pem(step: str, *args: str) -> None:
    """Run one `pem` command in its own process, its output and progress bars shown as they come."""
    print(f"\n=== {step}\n$ pem {shlex.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "pem_rt.cli", *args], check=False)
    if result.returncode != 0:
        raise PemError(f"demo step '{step}' failed (exit {result.returncode}); its output is above")


def save_frame(video: Path, png: Path, index: int) -> None:
    """One frame of the recorded stream as a PNG (the picture of a segmented frame)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise PemError(f"could not read frame {index} back from {video}")
    cv2.imwrite(str(png), frame)


@dataclass(frozen=True)
class DemoResult:
    miou: float  # val mIoU printed by `pem evaluate`
    onnx: Path
    engines: list[Path]
    report: dict[str, Any]  # `pem compare` report.json
    stream: dict[str, Any]  # `pem stream --metrics` JSON
    seconds: float


def run_demo(out: Path, frames: int, targets: str) -> DemoResult:
    start = time.perf_counter()
    data, run = out / "data", out / "run"
    onnx = run / f"cityscapes-tiny_semantic_{SIZE}.onnx"
    calib = data / "leftImg8bit" / "train"
    pem(
        "1/8 synthetic dataset (Cityscapes layout)",
        "synthetic",
        "--out",
        str(data),
        "--train",
        "96",
        "--val",
        "16",
        "--size",
        SIZE,
        "--seed",
        "1",
    )
    pem("2/8 train a tiny PEM on the CPU", "train", *TRAIN, "--data", str(data), "--out", str(run))
    pem(
        "3/8 evaluate on the held-out val split",
        "evaluate",
        "--checkpoint",
        str(run / "best.pt"),
        "--data",
        str(data),
        "--json",
        str(out / "evaluation.json"),
    )
    pem("4/8 export the deployable ONNX", "export", "--checkpoint", str(run / "best.pt"), "--size", SIZE)
    pem(
        "5/8 INT8 calibration (Q/DQ ONNX + cache)",
        "calibrate",
        "--onnx",
        str(onnx),
        "--calib-data",
        str(calib),
    )
    for precision in ("--fp16", "--int8"):
        extra = ["--calib-data", str(calib)] if precision == "--int8" else []
        pem(
            f"6/8 {precision[2:].upper()} TensorRT-RTX engine ({targets}, ahead of time)",
            "build-engine",
            precision,
            "--onnx",
            str(onnx),
            "--target",
            targets,
            *extra,
        )
    pem(
        "7/8 accuracy: PyTorch vs ONNX vs FP16 vs INT8",
        "compare",
        "--checkpoint",
        str(run / "best.pt"),
        "--data",
        str(data),
        "--size",
        SIZE,
        "--backends",
        "torch,onnx,fp16,int8",
        "--calib-methods",
        "max,percentile",
        "--out",
        str(out / "compare"),
    )
    video, metrics = out / "stream.mp4", out / "stream_metrics.json"
    pem(
        "8/8 stream the synthetic street (ONNX Runtime, headless)",
        "stream",
        "--source",
        "synthetic:256x512",
        "--onnx",
        str(onnx),
        "--headless",
        "--frames",
        str(frames),
        "--record",
        str(video),
        "--metrics",
        str(metrics),
        "--save-masks",
        str(out / "masks"),
    )
    save_frame(video, out / "frame.png", frames // 2)
    return DemoResult(
        miou=float(json.loads((out / "evaluation.json").read_text())["summary"]["mIoU"]),
        onnx=onnx,
        engines=sorted(run.glob("*.engine")),
        report=json.loads((out / "compare" / "report.json").read_text()),
        stream=json.loads(metrics.read_text()),
        seconds=time.perf_counter() - start,
    )


def summary(r: DemoResult, out: Path) -> str:
    lines = [
        f"\nDemo finished in {r.seconds / 60:.1f} minutes. Artefacts under {out}/:",
        f"  dataset            {out}/data (Cityscapes layout)",
        f"  checkpoint         {out}/run/best.pt (loss curve: {out}/run/loss_curve.png)",
        f"  val mIoU           {r.miou * 100:.2f} (pem evaluate, {out}/evaluation.json)",
        f"  ONNX               {r.onnx}",
    ]
    lines += [f"  engine             {e}" for e in r.engines]
    lines.append(f"  accuracy report    {out}/compare/report.json and report.png:")
    for name, b in r.report["backends"].items():
        lines.append(
            f"    {name:<16} label agreement {b['agreement'] * 100:6.2f}%   mIoU {b['mIoU'] * 100:6.2f}"
        )
    lines += [
        f"  stream video       {out}/stream.mp4 ({r.stream['frames']} frames, {r.stream['fps']:.1f} FPS "
        f"on this CPU; one frame: {out}/frame.png)",
        f"  stream metrics     {out}/stream_metrics.json; label PNGs in {out}/masks/",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pem demo", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="artefact folder (default runs/demo)")
    p.add_argument("--frames", type=int, default=150, help="frames to stream (default 150)")
    p.add_argument("--target", default="sm86,sm89", help="GPUs the engines are built for (default sm86,sm89)")
    return p


def _run(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    print(summary(run_demo(args.out, args.frames, args.target), args.out))


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("demo", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
