"""`python -m benchmarks.run_all` (or `make bench`): every CPU benchmark in one run, as ratios measured
side by side, with the machine description. Writes benchmarks/results/*.json, *.png and summary.md
(the table BENCHMARKS.md quotes). About 8 minutes on 2 cores. Not a test.

GPU numbers come from benchmarks/gpu_bench.py on a machine with CUDA and TensorRT.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import (
    bench_attention,
    bench_model,
    bench_multistream,
    bench_pipeline,
    bench_prototype_selection,
)
from benchmarks.common import RESULTS, machine, save_json

TARGETS = {
    "prototype selection at 1/8 of 1024x2048, fused/streaming vs naive": ">= 3x faster, >= 20x less memory",
    "PEM-CA vs masked cross-attention at 1024x2048": ">= 2x faster",
    "ONNX Runtime FP32 vs PyTorch eager (CPU)": ">= 1.5x",
    "stream pipeline vs bare backend": ">= 0.95x throughput",
    "4 streams batched vs one at a time": "reported (no target)",
}


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["", f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _f(value: float | None, fmt: str = ".0f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{suffix}"


def summary_markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores, torch {m['torch']}, "
        f"{m['torch_threads']} threads); ratios come from side-by-side runs."
    ]
    lines += _table(
        "1. PEM-CA vs masked cross-attention (CPU, PyTorch eager)",
        [
            "input",
            "tokens at 1/8",
            "layer ms PEM-CA / masked",
            "speed-up",
            "decoder ms PEM-CA / masked",
            "speed-up",
            "layer GFLOPs PEM-CA / masked",
        ],
        [
            [
                r["size"],
                str(r["tokens_stride8"]),
                f"{_f(r.get('pem_layer_ms'))} / {_f(r.get('masked_layer_ms'))}",
                _f(r.get("layer_speedup"), ".2f", "x"),
                f"{_f(r.get('pem_decoder_ms'))} / {_f(r.get('masked_decoder_ms'))}",
                _f(r.get("decoder_speedup"), ".2f", "x"),
                f"{_f(r.get('pem_layer_gflops'), '.2f')} / {_f(r.get('masked_layer_gflops'), '.2f')}",
            ]
            for r in results["attention"]
        ],
    )
    lines += _table(
        "2. Prototype selection (B=1, Q=100, C=256, 8 heads)",
        [
            "scale",
            "tokens",
            "ms naive / streaming / host kernel",
            "streaming speed-up",
            "peak MB naive / streaming / host kernel",
            "memory ratio streaming, kernel",
        ],
        [
            [
                r["scale"],
                str(r["tokens"]),
                f"{r['naive_ms']:.0f} / {r['streaming_ms']:.0f} / {r['kernel_ms']:.0f}",
                f"{r['streaming_speedup']:.2f}x",
                f"{r['naive_peak_mb']:.0f} / {r['streaming_peak_mb']:.0f} / {r['kernel_peak_mb']:.1f}",
                f"{r['streaming_memory_ratio']:.1f}x, {r['kernel_memory_ratio']:.0f}x",
            ]
            for r in results["prototype_selection"]
        ],
    )
    lines += _table(
        "3. Whole model on CPU (ms; speed-up over PyTorch eager)",
        ["preset", "input", "PyTorch eager", "ORT FP32", "ORT FP16", "ORT INT8"],
        [
            [r["preset"], r["size"], f"{r['torch_ms']:.0f}"]
            + [f"{r[f'ort_{p}_ms']:.0f} ({r[f'ort_{p}_vs_torch']:.2f}x)" for p in ("fp32", "fp16", "int8")]
            for r in results["model"]
        ],
    )
    lines += ["", "### 4. Stream pipeline vs bare backend", "", results["pipeline"]["markdown"]]
    if "multistream" in results:
        lines += ["", "### 5. Four streams batched vs one at a time", "", results["multistream"]["markdown"]]
    return "\n".join(lines) + "\n"


SECTIONS = {
    "1": "PEM-CA vs masked cross-attention",
    "2": "prototype selection",
    "3": "whole model",
    "4": "stream pipeline",
    "5": "four streams batched vs one at a time",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (a smoke run)")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help="comma-separated sections to re-measure (default all: 1..5); the others keep their numbers "
        "from benchmarks/results/latest.json",
    )
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",")]
    if any(s not in SECTIONS for s in only):
        parser.error(f"--only {args.only}: sections are {', '.join(SECTIONS)}")
    latest = RESULTS / "latest.json"
    if len(only) < len(SECTIONS) and not latest.is_file():
        parser.error(f"--only needs the other sections' numbers in {latest}: run all sections once")
    start = time.perf_counter()
    results: dict[str, Any] = json.loads(latest.read_text()) if len(only) < len(SECTIONS) else {}
    results.update({"machine": machine(), "date": time.strftime("%Y-%m-%d")})
    for n, section in enumerate(only, 1):
        print(f"{n}/{len(only)} {SECTIONS[section]}", flush=True)
        if section == "1":
            sizes = ((512, 512), (512, 1024)) if args.quick else bench_attention.SIZES
            results["attention"] = bench_attention.measure(sizes, 2 if args.quick else 5)
            bench_attention.plot(results["attention"], RESULTS / "attention.png")
        elif section == "2":
            results["prototype_selection"] = bench_prototype_selection.measure(2 if args.quick else 5)
            bench_prototype_selection.plot(
                results["prototype_selection"], RESULTS / "prototype_selection.png"
            )
        elif section == "3":
            size = (128, 256) if args.quick else (256, 512)
            results["model"] = bench_model.measure(size, 2 if args.quick else 3)
        elif section == "4":
            results["pipeline"] = bench_pipeline.measure(quick=args.quick)
        else:
            results["multistream"] = bench_multistream.measure(quick=args.quick)
    results["seconds"] = time.perf_counter() - start
    save_json("latest", results)
    (RESULTS / "summary.md").write_text(summary_markdown(results))
    print(json.dumps({"targets": TARGETS}, indent=2))
    print(f"wrote {RESULTS}/latest.json, summary.md and plots in {results['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
