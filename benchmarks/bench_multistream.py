"""Four streams batched through one model vs the same four one frame per call (the batching gain).

Uses the runtime's own benchmark (benchmarks/stream_batching.py): the real multi-source runtime on one
ONNX Runtime backend, four synthetic streets, batched (max batch 4) and one at a time, back to back per
repeat, plus the bare backend (one call of 4 frames vs 4 calls of 1). The model is STDC1 (random
weights; speed does not depend on them) exported with a dynamic batch at 256x512 (128x256 with --quick).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any


def measure(quick: bool = False) -> dict[str, Any]:
    import torch

    from benchmarks.stream_batching import measure as paired
    from export.export_onnx import export_onnx
    from runtime.backends import BackendOptions, open_backend
    from training.model import build_model, get_preset

    size = (128, 256) if quick else (256, 512)
    frames, repeats = (10, 2) if quick else (16, 3)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "stdc1_dynamic.onnx"
        torch.manual_seed(0)
        model = build_model(get_preset("cityscapes-stdc1")).eval()
        export_onnx(model, onnx_path, size, "semantic", batch=0)
        backend = open_backend(onnx=onnx_path, options=BackendOptions(provider="cpu"), log=lambda _: None)
        result = paired(backend, 4, frames, repeats, log=lambda line: print(line, flush=True))
        backend.close()
    out: dict[str, Any] = {
        "model": f"cityscapes-stdc1 {size[0]}x{size[1]}, dynamic batch, ONNX Runtime CPU",
        "streams": 4,
        "frames_per_stream": frames,
        "repeats": repeats,
        **{k: asdict(v) for k, v in result.items()},
    }
    p, b = result["pipeline"], result["bare"]
    out["markdown"] = (
        f"STDC1 at {size[0]}x{size[1]}, 4 synthetic streams, ONNX Runtime CPU: batched "
        f"{p.batched_fps:.1f} FPS (mean batch {p.mean_batch:.2f}) vs one at a time {p.single_fps:.1f} FPS, "
        f"**{p.ratio:.2f}x**; bare backend batch 4 vs batch 1 {b.ratio:.2f}x "
        f"(medians of {repeats} paired repeats)."
    )
    print(f"  4 streams batched / one at a time {p.ratio:.2f}x (bare {b.ratio:.2f}x)", flush=True)
    return out
