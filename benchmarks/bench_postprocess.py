"""Post-processing exact vs fast on CPU (ONNX Runtime), per preset and size, measured side by side.

- whole model: the deployable graph (uint8 frame in, label map out) exported with ``--postprocess exact``
  and with ``fast``, timed alternately on the same real photographs (scikit-image's);
- post-processing share: the post-processing alone (class and mask logits of the model's shapes in, label
  map out) exported as its own small graph per mode and timed the same way, over the whole model's time;
- agreement: the fraction of pixels where fast's labels equal exact's on those photographs.

Weights are random: speed does not depend on them (fast computes a fixed share of the cells exactly,
whatever the image), and random logits fill that share; accuracy on trained models is `pem compare`'s job
(random weights put edges everywhere, so the agreement printed here is a floor, not the trained figure).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

PRESETS = ("cityscapes-r50",)
SIZES = ((512, 1024), (1024, 2048))
MODES = ("exact", "fast")


def _postprocess_graph(path: Path, model: Any, size: tuple[int, int], fast: bool) -> None:
    """The semantic post-processing alone, as ONNX: class logits [1, Q, K+1], mask logits [1, Q, h, w]."""
    import torch

    from training.model.postprocess import semantic_labels_at

    class PostProcess(torch.nn.Module):
        def forward(self, class_logits: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
            return semantic_labels_at(class_logits, mask_logits, size, fast).to(torch.uint8)

    cfg = model.cfg
    q, k = cfg.decoder.num_queries, cfg.num_classes + 1
    example = (torch.randn(1, q, k), torch.randn(1, q, size[0] // 4, size[1] // 4))
    program = torch.onnx.export(
        PostProcess().eval(),
        example,
        dynamo=True,
        input_names=["class_logits", "mask_logits"],
        optimize=True,
        verbose=False,
    )
    assert program is not None
    program.save(str(path))


def _paired_ms(runs: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median ms of each callable, measured alternately (one call of each per round) after a warm-up."""
    import statistics
    import time

    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def measure_one(preset: str, size: tuple[int, int], repeats: int, frames: Any) -> dict[str, Any]:
    import numpy as np
    import torch

    from export.export_onnx import export_onnx
    from pem_rt.ort_session import cpu_session
    from training.model import build_model, get_preset

    torch.manual_seed(0)
    model = build_model(get_preset(preset)).eval()
    row: dict[str, Any] = {"preset": preset, "size": f"{size[0]}x{size[1]}"}
    with tempfile.TemporaryDirectory() as tmp:
        sessions, post = {}, {}
        for mode in MODES:
            path = Path(tmp) / f"model.{mode}.onnx"
            export_onnx(model, path, size, "semantic", postprocess=mode)
            sessions[mode] = cpu_session(path)
            pp_path = Path(tmp) / f"post.{mode}.onnx"
            _postprocess_graph(pp_path, model, size, mode == "fast")
            post[mode] = cpu_session(pp_path)
        labels = {
            m: np.stack([s.run(None, {"image": f[None]})[0][0] for f in frames]) for m, s in sessions.items()
        }
        row["agreement"] = float((labels["fast"] == labels["exact"]).mean())
        feed = {"image": frames[:1]}
        cfg = model.cfg
        rng = np.random.default_rng(0)
        logits = {
            "class_logits": rng.normal(size=(1, cfg.decoder.num_queries, cfg.num_classes + 1)).astype(
                np.float32
            ),
            "mask_logits": rng.normal(size=(1, cfg.decoder.num_queries, size[0] // 4, size[1] // 4)).astype(
                np.float32
            ),
        }
        whole = _paired_ms({m: lambda s=s: s.run(None, feed) for m, s in sessions.items()}, repeats)
        alone = _paired_ms({m: lambda s=s: s.run(None, logits) for m, s in post.items()}, max(repeats, 5))
    for mode in MODES:
        row[f"{mode}_ms"] = whole[mode]
        row[f"{mode}_post_ms"] = alone[mode]
        row[f"{mode}_post_share"] = alone[mode] / whole[mode]
    row["speedup"] = whole["exact"] / whole["fast"]
    row["post_speedup"] = alone["exact"] / alone["fast"]
    print(
        f"  {preset} {row['size']}: exact {row['exact_ms']:.0f} ms (post-processing "
        f"{row['exact_post_ms']:.0f} ms, {row['exact_post_share'] * 100:.0f} %), fast "
        f"{row['fast_ms']:.0f} ms "
        f"(post-processing {row['fast_post_ms']:.0f} ms, {row['fast_post_share'] * 100:.0f} %): fast "
        f"{row['speedup']:.2f}x whole model, {row['post_speedup']:.1f}x post-processing; labels agree on "
        f"{row['agreement'] * 100:.2f} %",
        flush=True,
    )
    return row


def measure(
    sizes: tuple[tuple[int, int], ...] = SIZES, repeats: int = 3, presets: tuple[str, ...] = PRESETS
) -> list[dict[str, Any]]:
    from calibration.frames import read_frames

    rows = []
    for size in sizes:
        frames = read_frames("skimage", size, 2)
        rows += [measure_one(preset, size, repeats, frames) for preset in presets]
    return rows
