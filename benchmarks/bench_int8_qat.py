"""INT8 on a model made to be sensitive to it: post-training quantisation vs quantisation-aware training.

    python benchmarks/bench_int8_qat.py --out runs/int8_qat

Writes the shades dataset (six grey shades ``--step`` levels apart with noise: classes whose scores
differ by little), trains a tiny PEM on it to convergence (`pem train`), fine-tunes that model with
fake quantisation for ``--qat-iters`` steps (`pem train --qat`), then runs `pem compare --backends
onnx,int8,int8-budget,int8-qat` on held-out frames: FP32, PTQ per ``--calib-methods``, the accuracy
budget search and the QAT graph side by side, every number measured with ONNX Runtime. Prints each
INT8 graph's distance from FP32, writes OUT/int8_qat-INIT.json (INIT: ``--qat-init``; the compare
report and its picture are in OUT/compare-INIT). Finished stages are reused (delete a folder to redo
it). Exits 1 unless the QAT graph ends closer to FP32 than PTQ with the ranges QAT starts from
(``--qat-init``, compared whether or not ``--calib-methods`` names it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pem_rt.files import atomic_write_text
from pem_rt.sizes import size_arg
from training.qat import QAT_METHODS


@dataclass(frozen=True)
class QatBench:
    out: Path
    step: int
    noise: float
    train_images: int
    val_images: int
    size: tuple[int, int]
    iters: int
    qat_iters: int
    calib_methods: tuple[str, ...]
    qat_init: str
    frames: int
    budget: float

    @property
    def data(self) -> Path:
        return self.out / "data"


def _pem(args: Sequence[str], what: str) -> None:
    cmd = [sys.executable, "-m", "pem_rt.cli", *args]
    print("$ pem " + " ".join(args), flush=True)
    if subprocess.run(cmd, check=False).returncode != 0:
        raise SystemExit(f"error: {what} failed (its output is above)")


def _train_flags(bench: QatBench) -> list[str]:
    h, w = bench.size
    return [
        "--preset", "tiny", "--data", str(bench.data), "--crop", f"{h}x{w}", "--base-size", str(h),
        "--scale-range", "1.0", "1.0", "--no-color-jitter", "--batch-size", "8", "--workers", "1",
        "--eval-limit", str(bench.val_images),
    ]  # fmt: skip


def write_data(bench: QatBench) -> None:
    from training.data.synthetic_custom import write_shades_dataset

    if (bench.data / "dataset.yaml").is_file():
        print(f"reusing the dataset {bench.data}")
        return
    write_shades_dataset(
        bench.data, bench.train_images, bench.val_images, bench.size, step=bench.step, noise=bench.noise
    )


def train_fp32(bench: QatBench) -> Path:
    run = bench.out / "fp32"
    if not (run / "summary.json").is_file():
        flags = ["--iters", str(bench.iters), "--lr", "1e-3", "--eval-every", str(max(1, bench.iters // 5))]
        _pem(["train", *_train_flags(bench), "--out", str(run), *flags], "FP32 training")
    else:
        print(f"reusing the finished run {run}")
    return run / "best.pt"


def train_qat(bench: QatBench, weights: Path) -> Path:
    run = bench.out / f"qat-{bench.qat_init}"
    if not (run / "summary.json").is_file():
        flags = ["--iters", str(bench.qat_iters), "--lr", "1e-4", "--eval-every", str(bench.qat_iters)]
        init = ["--calib-method", bench.qat_init]
        qat = ["train", "--qat", "--weights", str(weights), *_train_flags(bench), "--out", str(run)]
        _pem([*qat, *flags, *init], "QAT fine-tuning")
    else:
        print(f"reusing the finished run {run}")
    return run / "last.pt"


def compare(bench: QatBench, fp32: Path, qat: Path) -> dict[str, object]:
    out = bench.out / f"compare-{bench.qat_init}"
    h, w = bench.size
    args = [
        "compare", "--checkpoint", str(fp32), "--data", str(bench.data), "--dataset", "custom",
        "--size", f"{h}x{w}", "--backends", "onnx,int8,int8-budget,int8-qat",
        "--calib-methods", ",".join(bench.calib_methods), "--int8-budget", str(bench.budget),
        "--qat-checkpoint", str(qat), "--max-frames", str(bench.frames), "--out", str(out),
    ]  # fmt: skip
    _pem(args, "pem compare")
    report: dict[str, object] = json.loads((out / "report.json").read_text())
    return report


def distances(report: dict[str, object]) -> dict[str, float]:
    """mIoU points between each INT8 backend and the FP32 reference, as |INT8 - FP32|."""
    backends = report["backends"]
    assert isinstance(backends, dict)
    ref = backends[report["reference"]]["mIoU"]
    return {name: abs(b["mIoU"] - ref) * 100 for name, b in backends.items() if name.startswith("int8")}


def parse(argv: Sequence[str] | None) -> QatBench:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--out", type=Path, default=Path("runs/int8_qat"), help="output (default runs/int8_qat)")
    p.add_argument("--step", type=int, default=3, help="grey levels between shades (default 3)")
    p.add_argument("--noise", type=float, default=1.0, help="grey noise sigma (default 1.0)")
    p.add_argument("--train-images", type=int, default=256, help="training images (default 256)")
    p.add_argument("--val-images", type=int, default=64, help="held-out images (default 64)")
    p.add_argument("--size", type=size_arg, default=(128, 256), help="image size HxW (default 128x256)")
    p.add_argument("--iters", type=int, default=1500, help="FP32 training steps (default 1500)")
    p.add_argument("--qat-iters", type=int, default=300, help="QAT steps (default 300)")
    p.add_argument(
        "--calib-methods",
        default="percentile",
        help="PTQ calibration methods, comma-separated (default percentile, `pem calibrate`'s default)",
    )
    p.add_argument(
        "--qat-init",
        choices=QAT_METHODS,
        default="max",
        help="QAT's initial activation ranges (default max, `pem train --qat`'s default)",
    )
    p.add_argument("--frames", type=int, default=32, help="held-out frames compared (default 32)")
    p.add_argument("--budget", type=float, default=0.5, help="int8-budget mIoU drop (default 0.5)")
    a = p.parse_args(argv)
    methods = tuple(m for m in a.calib_methods.split(",") if m)
    if a.qat_init not in methods:
        methods += (a.qat_init,)
    return QatBench(
        a.out, a.step, a.noise, a.train_images, a.val_images, a.size, a.iters, a.qat_iters, methods,
        a.qat_init, a.frames, a.budget,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    bench = parse(argv)
    write_data(bench)
    fp32 = train_fp32(bench)
    qat = train_qat(bench, fp32)
    report = compare(bench, fp32, qat)
    dist = distances(report)
    start = f"int8-{bench.qat_init}"  # the PTQ graph whose ranges QAT starts from
    ok = dist["int8-qat"] < dist[start]
    result = {
        "qat_init": bench.qat_init,
        "distance_from_fp32_points": dist,
        "qat_closer_than_its_ptq": ok,
        "report": report,
    }
    path = bench.out / f"int8_qat-{bench.qat_init}.json"
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    for name, d in dist.items():
        print(f"{name:<18}|mIoU - FP32| = {d:.2f} points")
    verdict = "closer to" if ok else "not closer to"
    print(
        f"int8-qat ({bench.qat_init} ranges, {bench.qat_iters} steps) is {verdict} FP32 than PTQ with the "
        f"same ranges ({dist['int8-qat']:.2f} vs {dist[start]:.2f} points)"
    )
    print(f"wrote {path}")
    print(f"int8_qat: {'PASSED' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
