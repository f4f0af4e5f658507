"""`python benchmarks/gpu_torch_bench.py`: the CPU benchmarks' questions asked again on an NVIDIA GPU,
with PyTorch and our CUDA kernels only (no TensorRT needed; engines are benchmarks/gpu_bench.py's job).

1. PEM-CA vs masked cross-attention: one layer and the whole decoder at 512x512 ... 2048x4096, fp32.
2. Prototype selection at 1/32, 1/16, 1/8 of 1024x2048: naive PyTorch vs streaming PyTorch vs our fused
   CUDA kernel (the plugin library's launcher): median time and peak extra GPU memory.
3. Modulated deformable conv on the pixel decoder's three DCN shapes at 1024x2048 (R50): our CUDA kernel
   vs torchvision.ops.deform_conv2d, with random offsets.
4. PyTorch eager FPS of the deployable model (uint8 frame in, label map out) per preset at 1024x2048 and
   512x1024, fp32: the paper's baseline setting, on this card.

Times are medians over CUDA-synchronised calls after warm-up. Writes benchmarks/results/gpu_torch.json
(--out) and prints a markdown summary. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from bench_attention import _layer_inputs

from benchmarks.common import RESULTS
from benchmarks.prototype_selection_kernels import make_inputs

SIZES = ((512, 512), (512, 1024), (1024, 2048), (2048, 4096))
SCALES = {"1/32": (32, 64), "1/16": (64, 128), "1/8": (128, 256)}
PRESETS = ("cityscapes-r50", "cityscapes-stdc1", "cityscapes-stdc2")
DEVICE = "cuda"  # the smoke test of this script swaps in "cpu"


def gpu_ms(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of ``fn`` with the GPU synchronised around each call."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def peak_mb(fn: Callable[[], object]) -> float:
    """Extra peak GPU memory (MB) of one call, its result freed: every temporary counts."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del result
    return peak / 2**20


def attention() -> list[dict[str, Any]]:
    from training.model import build_model, get_preset, with_ablation
    from training.model.cross_attention import MaskedCrossAttention, PrototypeCrossAttention

    torch.manual_seed(0)
    layers = {
        "pem": PrototypeCrossAttention(256, 8).to(DEVICE).eval(),
        "masked": MaskedCrossAttention(256, 8).to(DEVICE).eval(),
    }
    decoders = {
        kind: build_model(with_ablation(get_preset("cityscapes-r50"), cross_attention=kind))
        .predictor.to(DEVICE)
        .eval()
        for kind in layers
    }
    rows = []
    for h, w in SIZES:
        n = (h // 8) * (w // 8)
        x = [t.to(DEVICE) for t in _layer_inputs(h, w)]
        levels = [torch.randn(1, 128, h // s, w // s, device=DEVICE) for s in (32, 16, 8)]
        mask_features = torch.randn(1, 256, h // 4, w // 4, device=DEVICE)
        row: dict[str, Any] = {"size": f"{h}x{w}", "tokens_stride8": n}
        with torch.no_grad():
            for kind in layers:
                layer, decoder = layers[kind], decoders[kind]
                row[f"{kind}_layer_ms"] = gpu_ms(partial(layer, *x))
                row[f"{kind}_layer_peak_mb"] = peak_mb(partial(layer, *x))
                row[f"{kind}_decoder_ms"] = gpu_ms(
                    partial(decoder, levels, mask_features, all_predictions=False), repeats=10
                )
        row["layer_speedup"] = row["masked_layer_ms"] / row["pem_layer_ms"]
        row["decoder_speedup"] = row["masked_decoder_ms"] / row["pem_decoder_ms"]
        print(
            f"  {row['size']:>9}: layer {row['pem_layer_ms']:.2f} / {row['masked_layer_ms']:.2f} ms "
            f"({row['layer_speedup']:.2f}x), decoder {row['pem_decoder_ms']:.1f} / "
            f"{row['masked_decoder_ms']:.1f} ms ({row['decoder_speedup']:.2f}x)",
            flush=True,
        )
        rows.append(row)
    return rows


def prototype_selection() -> list[dict[str, Any]]:
    from plugins import cuda_ops
    from training.model import prototype_selection as ps

    lib = cuda_ops.library()
    rows = []
    for scale, (h, w) in SCALES.items():
        n = h * w
        f, q, m = make_inputs(n, DEVICE, torch.float32)  # B=1, Q=100, C=256, as the plugin's own benchmark
        impls: dict[str, Callable[[], torch.Tensor]] = {
            "naive": lambda f=f, q=q, m=m: ps.prototype_selection(f, q, m, 8),
            "streaming": lambda f=f, q=q, m=m: ps.gather_prototypes(
                f, ps.prototype_indices_streaming(f, q, m, 8)
            ),
            "kernel": lambda f=f, q=q, m=m: cuda_ops.prototype_selection(f, q, m, 8, lib=lib)[0],
        }
        row: dict[str, Any] = {"scale": scale, "tokens": n}
        with torch.no_grad():
            want = impls["naive"]()
            for name, fn in impls.items():
                row[f"{name}_ms"] = gpu_ms(fn, repeats=50)
                row[f"{name}_peak_mb"] = peak_mb(fn)
                row[f"{name}_equal"] = bool(torch.equal(fn(), want))
        row["kernel_speedup"] = row["naive_ms"] / row["kernel_ms"]
        row["kernel_memory_ratio"] = row["naive_peak_mb"] / max(row["kernel_peak_mb"], 1e-3)
        row["streaming_speedup"] = row["naive_ms"] / row["streaming_ms"]
        print(
            f"  {scale:>5} ({n} tokens): ms naive {row['naive_ms']:.3f} / streaming "
            f"{row['streaming_ms']:.3f} / "
            f"kernel {row['kernel_ms']:.3f}; peak MB {row['naive_peak_mb']:.1f} / "
            f"{row['streaming_peak_mb']:.2f} / {row['kernel_peak_mb']:.3f}; equal "
            f"{row['streaming_equal']}/{row['kernel_equal']}",
            flush=True,
        )
        rows.append(row)
    return rows


def deform_conv() -> list[dict[str, Any]]:
    from torchvision.ops import deform_conv2d

    from plugins import cuda_ops
    from training.model import build_model, get_preset
    from training.model.pixel_decoder import ModulatedDeformConv

    lib = cuda_ops.library()
    model = build_model(get_preset("cityscapes-r50")).eval()
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    hooks = [
        mod.register_forward_pre_hook(
            lambda mod, args: shapes.append((tuple(args[0].shape), tuple(mod.weight.shape)))
        )
        for mod in model.modules()
        if isinstance(mod, ModulatedDeformConv)
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, 1024, 2048))
    for hook in hooks:
        hook.remove()
    del model
    rows = []
    for x_shape, w_shape in shapes:
        n, c, h, w = x_shape
        x = torch.randn(*x_shape, device=DEVICE)
        offset = torch.randn(n, 18, h, w, device=DEVICE) * 2
        mask = torch.rand(n, 9, h, w, device=DEVICE)
        weight = torch.randn(*w_shape, device=DEVICE) / (c * 9) ** 0.5
        with torch.no_grad():
            ref = deform_conv2d(x, offset, weight, None, padding=(1, 1), mask=mask)
            ours = cuda_ops.deform_conv2d(x, offset, mask, weight, padding=(1, 1), lib=lib)
            row = {
                "input": list(x_shape),
                "weight": list(w_shape),
                "max_abs_error": float((ref - ours).abs().max()),
                "torchvision_ms": gpu_ms(
                    partial(deform_conv2d, x, offset, weight, padding=(1, 1), mask=mask)
                ),
                "kernel_ms": gpu_ms(
                    partial(cuda_ops.deform_conv2d, x, offset, mask, weight, padding=(1, 1), lib=lib)
                ),
            }
        row["kernel_speedup"] = row["torchvision_ms"] / row["kernel_ms"]
        print(
            f"  DCN {x_shape} -> {w_shape[0]}: torchvision {row['torchvision_ms']:.3f} ms, ours "
            f"{row['kernel_ms']:.3f} ms ({row['kernel_speedup']:.2f}x), "
            f"max |diff| {row['max_abs_error']:.2e}",
            flush=True,
        )
        rows.append(row)
    return rows


def eager_fps() -> list[dict[str, Any]]:
    from export.deploy_model import DeployModel
    from training.model import build_model, get_preset

    rows = []
    for preset in PRESETS:
        torch.manual_seed(0)
        deploy = DeployModel(build_model(get_preset(preset)).eval(), "semantic").to(DEVICE).eval()
        for h, w in ((1024, 2048), (512, 1024)):
            frame = torch.randint(0, 256, (1, h, w, 3), dtype=torch.uint8, device=DEVICE)
            with torch.no_grad():
                ms = gpu_ms(partial(deploy, frame), repeats=30, warmup=5)
                try:
                    with torch.autocast("cuda", dtype=torch.float16):
                        ms_fp16 = gpu_ms(partial(deploy, frame), repeats=30, warmup=5)
                except RuntimeError as e:  # keep the fp32 number whatever autocast does
                    print(f"  autocast fp16 failed: {str(e).splitlines()[0][:200]}", flush=True)
                    ms_fp16 = float("nan")
            row = {"preset": preset, "size": f"{h}x{w}", "fp32_ms": ms, "fp32_fps": 1e3 / ms}
            row.update({"autocast_fp16_ms": ms_fp16, "autocast_fp16_fps": 1e3 / ms_fp16})
            print(
                f"  {preset} {h}x{w}: fp32 {row['fp32_fps']:.1f} FPS, autocast fp16 "
                f"{row['autocast_fp16_fps']:.1f} FPS",
                flush=True,
            )
            rows.append(row)
        torch.cuda.empty_cache()
    return rows


SECTIONS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "attention": attention,
    "prototype_selection": prototype_selection,
    "deform_conv": deform_conv,
    "eager_fps": eager_fps,
}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SECTIONS), help=f"sections: {', '.join(SECTIONS)}")
    p.add_argument("--out", type=Path, default=RESULTS / "gpu_torch.json", help="where the JSON goes")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_torch_bench: no CUDA device; run it on a machine with an NVIDIA GPU", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (the paper's PyTorch baseline)
    torch.backends.cudnn.allow_tf32 = False
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    for name in args.only.split(","):
        print(f"{name}", flush=True)
        try:
            results[name] = SECTIONS[name]()
        except Exception as e:  # one failing section must not lose the others' numbers
            traceback.print_exc()
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        torch.cuda.empty_cache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
