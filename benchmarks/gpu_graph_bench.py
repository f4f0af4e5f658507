"""`python benchmarks/gpu_graph_bench.py`: the deployable model on an NVIDIA GPU without TensorRT.

Our two CUDA kernels (the plugins' own launchers, plugins/cuda_ops.py) run as PyTorch operators in place of
torchvision's deform conv and the reference prototype selection; each frame is captured once in a CUDA
graph and replayed, which removes the kernel-launch overhead that bounds eager PyTorch on a fast GPU. Per
preset (R50, STDC1, STDC2), size (512x1024, 1024x2048), batch (1, 4) and precision (FP32 with TF32 off;
FP16 by autocast): frames per second of the whole graph, peak GPU memory, and the share of the three
stages (backbone with pre-processing, pixel decoder, transformer decoder + post-processing), each stage
timed as its own replayed graph. Labels are checked against eager PyTorch with torchvision's kernels.

This is the closest measurement to an engine this workplace allows, not an engine: TensorRT's layer fusion,
its kernel choice and INT8 are missing. Say so wherever its numbers are quoted. Random weights (speed does
not depend on them). Writes benchmarks/results/gpu_graph.json and .md; ``--list`` prints the plan without a
GPU. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

RESULTS = Path(__file__).parent / "results"
PRESETS = ("cityscapes-r50", "cityscapes-stdc1", "cityscapes-stdc2")
SIZES = ((512, 1024), (1024, 2048))
STAGES = ("backbone", "pixel decoder", "transformer decoder + post-processing")


@dataclass(frozen=True)
class Case:
    preset: str
    size: tuple[int, int]
    batch: int
    precision: str  # fp32 | fp16
    postprocess: str  # exact | fast

    @property
    def label(self) -> str:
        h, w = self.size
        return f"{self.preset} {h}x{w} b{self.batch} {self.precision} {self.postprocess}"


@dataclass(frozen=True)
class BenchOptions:
    cases: tuple[Case, ...]
    repeats: int
    warmup: int
    out: Path
    plugins: Path | None  # plugin library; None builds or reuses the default one


def _csv(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    from pem_rt.model_meta import DEFAULT_POSTPROCESS, POSTPROCESS_MODES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets")
    p.add_argument(
        "--sizes",
        default=",".join(f"{h}x{w}" for h, w in SIZES),
        help="comma-separated HxW (multiples of 32)",
    )
    p.add_argument("--batches", default="1,4", help="comma-separated batch sizes")
    p.add_argument("--precisions", default="fp32,fp16", help="fp32 (TF32 off) and/or fp16 (autocast)")
    p.add_argument(
        "--postprocess",
        default=DEFAULT_POSTPROCESS,
        help=f"comma-separated post-processing modes of {', '.join(POSTPROCESS_MODES)} "
        f"(default {DEFAULT_POSTPROCESS})",
    )
    p.add_argument("--repeats", type=int, default=50, help="timed graph replays per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed replays first")
    p.add_argument("--plugins", type=Path, default=None, help="plugin library (default: build or reuse ours)")
    p.add_argument("--out", type=Path, default=RESULTS / "gpu_graph.json", help="results JSON (and .md)")
    p.add_argument("--list", action="store_true", help="print the cases and exit (needs no GPU)")
    return p


def parse_options(argv: Sequence[str] | None = None) -> tuple[BenchOptions, bool]:
    """Flags -> typed options (and whether only to list the plan); bad values end in a usage error."""
    from pem_rt.model_meta import POSTPROCESS_MODES
    from pem_rt.sizes import parse_size
    from training.model import PRESETS as KNOWN

    parser = build_parser()
    args = parser.parse_args(argv)
    presets, modes, precisions = _csv(args.presets), _csv(args.postprocess), _csv(args.precisions)
    checks = [
        ("--presets", presets, tuple(KNOWN)),
        ("--postprocess", modes, POSTPROCESS_MODES),
        ("--precisions", precisions, ("fp32", "fp16")),
    ]
    for flag, values, allowed in checks:
        bad = [v for v in values if v not in allowed] or ([] if values else [""])
        if bad:
            parser.error(f"{flag}: '{bad[0]}' is not one of {', '.join(allowed)}")
    try:
        sizes = [parse_size(s) for s in _csv(args.sizes)]
        batches = [int(b) for b in _csv(args.batches)]
    except (argparse.ArgumentTypeError, ValueError) as e:
        parser.error(f"--sizes/--batches: {e}")
    if not sizes or any(h % 32 or w % 32 for h, w in sizes):
        parser.error(f"--sizes {args.sizes}: every size must be HxW with multiples of 32")
    if not batches or min(batches) < 1 or args.repeats < 1:
        parser.error("--batches and --repeats must be positive")
    cases = tuple(
        Case(preset, size, batch, precision, mode)
        for preset in presets
        for size in sizes
        for batch in batches
        for precision in precisions
        for mode in modes
    )
    return BenchOptions(cases, args.repeats, max(args.warmup, 0), args.out, args.plugins), args.list


# ---- our kernels as PyTorch operators ----------------------------------------------------------------

Conv = Callable[[Tensor, Tensor, Tensor, Tensor, int], Tensor]  # x, offset, mask, weight, padding -> y
Select = Callable[[Tensor, Tensor, Tensor, int], Tensor]  # tokens, queries, mask logits, heads -> prototypes


def register_kernels(library: Path | None) -> tuple[Conv, Select]:
    """Register the plugin library's launchers as ``pem_bench::deform_conv2d`` / ``prototype_selection``."""
    from plugins import cuda_ops

    lib = cuda_ops.library(library)

    @torch.library.custom_op("pem_bench::deform_conv2d", mutates_args=())
    def deform_conv(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, padding: int) -> Tensor:
        dtype = x.dtype
        return cuda_ops.deform_conv2d(
            x, offset.to(dtype), mask.to(dtype), weight.to(dtype), padding=(padding, padding), lib=lib
        )

    @deform_conv.register_fake
    def _(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, padding: int) -> Tensor:
        return x.new_empty((x.shape[0], weight.shape[0], *offset.shape[-2:]))

    @torch.library.custom_op("pem_bench::prototype_selection", mutates_args=())
    def select(tokens: Tensor, queries: Tensor, mask_logits: Tensor, heads: int) -> Tensor:
        return cuda_ops.prototype_selection(tokens, queries.to(tokens.dtype), mask_logits, heads, lib=lib)[0]

    @select.register_fake
    def _(tokens: Tensor, queries: Tensor, mask_logits: Tensor, heads: int) -> Tensor:
        return tokens.new_empty((tokens.shape[0], queries.shape[1], tokens.shape[2]))

    return deform_conv, select


class KernelDeformConv(nn.Module):
    """A pixel decoder's ModulatedDeformConv computed by ``conv`` (our kernel) with its own weight."""

    def __init__(self, layer: Any, conv: Conv) -> None:  # a ModulatedDeformConv
        super().__init__()
        self.layer, self.conv = layer, conv

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        return self.conv(x, offset, mask, self.layer.weight, int(self.layer.padding))


class KernelPrototypeAttention(nn.Module):
    """PEM-CA with ``select`` (our fused kernel) choosing the prototypes; every other step is the layer's
    own (training.model.cross_attention.PrototypeCrossAttention, its GPU path)."""

    def __init__(self, layer: Any, select: Select) -> None:  # a PrototypeCrossAttention
        super().__init__()
        self.layer, self.select = layer, select

    def forward(
        self, tgt: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor, mask_logits: Tensor | None
    ) -> Tensor:
        a = self.layer
        tokens = F.normalize(a.feature_proj(memory + pos), dim=-1)
        queries = F.normalize(a.query_proj(tgt + query_pos), dim=-1)
        if mask_logits is None:  # nothing masked
            mask_logits = tokens.new_zeros((tokens.shape[0], queries.shape[1], tokens.shape[1]))
        protos = self.select(tokens, queries, mask_logits.detach(), a.heads).to(queries.dtype)
        out = F.normalize(a.proj(protos * queries), dim=1) * a.alpha + protos
        return a.final(out) + tgt


def use_kernels(model: nn.Module, conv: Conv, select: Select) -> int:
    """Swap every DCN and PEM-CA layer of ``model`` for its kernel version; returns how many."""
    from training.model.cross_attention import PrototypeCrossAttention
    from training.model.pixel_decoder import ModulatedDeformConv

    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ModulatedDeformConv):
                setattr(parent, name, KernelDeformConv(child, conv))
            elif isinstance(child, PrototypeCrossAttention):
                setattr(parent, name, KernelPrototypeAttention(child, select))
            else:
                continue
            swapped += 1
    return swapped


# ---- stages and CUDA graphs --------------------------------------------------------------------------

Stage = Callable[[Any], Any]


def stages(deploy: Any, size: tuple[int, int]) -> tuple[Stage, Stage, Stage]:
    """The deployable model (export.deploy_model.DeployModel) as three chained steps (STAGES)."""
    model = deploy.model

    def backbone(frame: Tensor) -> Any:
        return model.backbone(deploy.preprocess(frame))

    def pixel_decoder(features: Any) -> Any:
        return model.pixel_decoder(features)

    def decoder(decoded: Any) -> Any:
        mask_features, levels = decoded
        pred = model.predictor(levels, mask_features, all_predictions=False)[-1]
        return deploy.postprocess(pred.class_logits, pred.mask_logits, size)

    return backbone, pixel_decoder, decoder


class Replay:
    """``fn(inputs)`` captured in a CUDA graph (after warm-up on a side stream); ``output`` is static."""

    def __init__(self, fn: Stage, inputs: Any, fp16: bool) -> None:
        self.graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.no_grad(), _precision(fp16):
            for _ in range(3):
                fn(inputs)
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(self.graph), torch.no_grad(), _precision(fp16):
            self.output = fn(inputs)

    def __call__(self) -> None:
        self.graph.replay()


def _precision(fp16: bool) -> Any:
    return torch.autocast("cuda", dtype=torch.float16, enabled=fp16, cache_enabled=False)


def replay_ms(replays: Sequence[Replay], repeats: int, warmup: int) -> float:
    """Milliseconds per round of replaying ``replays`` in order, timed with CUDA events."""
    for _ in range(warmup):
        for r in replays:
            r()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        for r in replays:
            r()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def measure_case(case: Case, options: BenchOptions, kernels: tuple[Conv, Select]) -> dict[str, Any]:
    from export.deploy_model import DeployModel
    from training.model import build_model, get_preset

    torch.manual_seed(0)
    model = build_model(get_preset(case.preset)).eval().cuda()
    eager = DeployModel(model, "semantic", postprocess=case.postprocess).eval()
    frame = torch.randint(0, 256, (case.batch, *case.size, 3), dtype=torch.uint8, device="cuda")
    fp16 = case.precision == "fp16"
    with torch.no_grad(), _precision(fp16):
        want = eager(frame)[0]
    swapped = use_kernels(model, *kernels)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    whole = Replay(eager, frame, fp16)
    whole_ms = replay_ms([whole], options.repeats, options.warmup)
    peak = torch.cuda.max_memory_allocated()
    agreement = float((whole.output[0] == want).float().mean())
    del whole
    steps, inputs = [], frame
    for fn in stages(eager, case.size):
        steps.append(Replay(fn, inputs, fp16))
        inputs = steps[-1].output
    stage_ms = [replay_ms([s], options.repeats, options.warmup) for s in steps]
    chained = float((steps[-1].output[0] == want).float().mean())
    row: dict[str, Any] = asdict(case) | {
        "kernels_swapped": swapped,
        "ms": whole_ms,
        "fps": case.batch * 1000.0 / whole_ms,
        "peak_gpu_mb": peak / 2**20,
        "weights_mb": base / 2**20,
        "stage_ms": dict(zip(STAGES, stage_ms, strict=True)),
        "stage_share": {s: ms / sum(stage_ms) for s, ms in zip(STAGES, stage_ms, strict=True)},
        "labels_equal_to_eager": agreement,
        "stages_labels_equal_to_eager": chained,
    }
    shares = " / ".join(f"{v * 100:.0f}" for v in row["stage_share"].values())
    print(
        f"  {case.label}: {row['fps']:.1f} FPS ({whole_ms:.2f} ms per batch), peak "
        f"{row['peak_gpu_mb']:.0f} MB, stages {shares} %, labels equal to eager {agreement * 100:.2f} %",
        flush=True,
    )
    return row


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"{results['device']}, torch {results['torch']}, {results['date']}: CUDA-graph replay with our "
        "kernels as PyTorch operators (no TensorRT: the closest measurement to an engine here, not an "
        "engine).",
        "",
        "| preset | input | batch | precision | post-processing | FPS | ms per batch | peak GPU MB | "
        "stage share backbone / pixel decoder / decoder + post | labels = eager |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["cases"]:
        if "error" in r:
            lines.append(f"| {r['label']} | error: {r['error'][:80]} |||||||||")
            continue
        shares = " / ".join(f"{v * 100:.0f} %" for v in r["stage_share"].values())
        lines.append(
            f"| {r['preset']} | {r['size'][0]}x{r['size'][1]} | {r['batch']} | {r['precision']} | "
            f"{r['postprocess']} | {r['fps']:.1f} | {r['ms']:.2f} | {r['peak_gpu_mb']:.0f} | {shares} | "
            f"{r['labels_equal_to_eager'] * 100:.2f} % |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    options, list_only = parse_options(argv)
    if list_only:
        print("\n".join(c.label for c in options.cases))
        return 0
    if not torch.cuda.is_available():
        print("gpu_graph_bench: no CUDA device; run it on a machine with an NVIDIA GPU", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    torch.backends.cudnn.allow_tf32 = False
    kernels = register_kernels(options.plugins)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "cases": [],
    }
    for case in options.cases:
        try:
            results["cases"].append(measure_case(case, options, kernels))
        except Exception as e:  # one failing case (e.g. out of memory) must not lose the others' numbers
            traceback.print_exc()
            results["cases"].append({"label": case.label, "error": f"{type(e).__name__}: {e}"})
        torch.cuda.empty_cache()
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(results, indent=2) + "\n")
    options.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    print(f"wrote {options.out} and {options.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
