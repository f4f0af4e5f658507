"""`python export/compare.py --checkpoint runs/x/best.pt --data DATASET`: how far is each deployed precision
from the trained model? PyTorch eager, ONNX FP32 / FP16 / INT8 (ONNX Runtime) and a TensorRT engine run on
the same frames; Polygraphy's comparator gives per-output abs/rel errors, and we add what Polygraphy lacks:
label-map pixel agreement and mIoU against ground truth per backend. Writes report.json + report.png and
exits non-zero when a tolerance given on the command line is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from calibration.calibrate import calibrate
from calibration.frames import fit_frame, fit_labels, read_frames
from export.export_onnx import export_onnx, load_model
from export.precision import convert_fp16
from pem_rt.command import run_command
from pem_rt.errors import PemError
from pem_rt.files import atomic_write_text
from pem_rt.lineage import SCRATCH, Lineage
from pem_rt.model_meta import ModelMeta
from pem_rt.paths import check_output_dir
from training.cli_args import parse_size
from training.metrics import SemanticMetric

BACKENDS = ("torch", "onnx", "fp16", "int8", "engine")
FLOAT_OUTPUTS = ("class_logits", "mask_logits", "scores")


@dataclass
class EvalFrames:
    images: np.ndarray  # uint8 BGR [N, H, W, 3] at the model's size
    labels: (
        np.ndarray | None
    )  # uint8 [N, H, W] ground truth (255 = void), when the frames come from a dataset
    names: list[str]


@dataclass
class BackendResult:
    name: str
    outputs: list[dict[str, np.ndarray]]  # one dict per frame
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)


def load_frames(args: argparse.Namespace, size: tuple[int, int]) -> EvalFrames:
    if args.data is not None:
        import cv2

        from training.data.loader import open_dataset

        ds = open_dataset(args.dataset, args.data, args.split, panoptic=False)
        if len(ds) == 0:
            raise PemError(f"--data {args.data} has no images in split '{args.split}'")
        records = ds.records[: args.max_frames]
        images, labels = [], []
        for r in records:
            img = cv2.imread(str(r.image), cv2.IMREAD_COLOR)
            if img is None:
                raise PemError(f"cannot read image {r.image}")
            images.append(fit_frame(img, size))
            labels.append(fit_labels(ds.ground_truth(r, panoptic=False).semantic, size))
        return EvalFrames(np.stack(images), np.stack(labels), [r.stem for r in records])
    frames = read_frames(args.frames, size, args.max_frames)
    return EvalFrames(frames, None, [f"frame{i:03d}" for i in range(len(frames))])


def run_torch(model: Any, frames: np.ndarray) -> list[dict[str, np.ndarray]]:
    import torch

    from export.deploy_model import DeployModel

    deploy = DeployModel(model, "semantic", debug=True).eval()
    outs = []
    with torch.no_grad():
        for frame in frames:
            tensors = deploy(torch.from_numpy(frame[None]))
            outs.append({n: t.numpy() for n, t in zip(deploy.output_names, tensors, strict=True)})
    return outs


def run_onnx(path: Path, frames: np.ndarray) -> list[dict[str, np.ndarray]]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return [dict(zip(names, session.run(None, {"image": f[None]}), strict=True)) for f in frames]


def run_engine(path: Path, frames: np.ndarray) -> list[dict[str, np.ndarray]]:
    from runtime.backends import open_backend

    backend = open_backend(engine=path)
    return [backend.infer(f[None]) for f in frames]


def polygraphy_stats(ref: BackendResult, cand: BackendResult) -> dict[str, dict[str, float]]:
    """Per float output: max/mean/median abs and rel error over all frames, from Polygraphy's comparator."""
    from polygraphy.comparator import Comparator, RunResults, SimpleCompareFunc
    from polygraphy.comparator.struct import IterationResult
    from polygraphy.logger import G_LOGGER

    names = [n for n in FLOAT_OUTPUTS if n in ref.outputs[0] and n in cand.outputs[0]]
    if not names:
        return {}
    results = RunResults()
    for backend in (ref, cand):
        iters = [
            IterationResult({n: o[n].astype(np.float32) for n in names}, runner_name=backend.name)
            for o in backend.outputs
        ]
        results.append((backend.name, iters))
    G_LOGGER.module_severity = G_LOGGER.ERROR
    accuracy = Comparator.compare_accuracy(results, compare_func=SimpleCompareFunc(rtol=1e9, atol=1e9))
    per_iter = accuracy[0][(ref.name, cand.name)]  # one comparison function; per-iteration results
    stats = {}
    for n in names:
        rows = [it[n] for it in per_iter]
        stats[n] = {
            "max_abs": float(max(r.max_absdiff for r in rows)),
            "mean_abs": float(np.mean([r.mean_absdiff for r in rows])),
            "median_abs": float(np.median([r.median_absdiff for r in rows])),
            "max_rel": float(max(r.max_reldiff for r in rows)),
            "mean_rel": float(np.mean([r.mean_reldiff for r in rows])),
        }
    return stats


def segmentation_stats(
    ref: BackendResult, cand: BackendResult, frames: EvalFrames, num_classes: int
) -> dict[str, Any]:
    ref_labels = np.stack([o["labels"][0] for o in ref.outputs])
    labels = np.stack([o["labels"][0] for o in cand.outputs])
    stats: dict[str, Any] = {"agreement": float((labels == ref_labels).mean())}
    truth = frames.labels if frames.labels is not None else ref_labels
    metric = SemanticMetric(num_classes)
    metric.update(labels, truth)
    stats["mIoU"] = metric.summary()["mIoU"]
    stats["per_class_iou"] = [None if np.isnan(v) else float(v) for v in metric.iou()]
    stats["truth"] = "ground truth" if frames.labels is not None else f"{ref.name} predictions"
    return stats


def write_picture(
    path: Path, results: list[BackendResult], frames: EvalFrames, classes: tuple[str, ...]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref, cands = results[0], results[1:]
    fig, (ax_bar, ax_map) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [1.6, 1]})
    ref_iou = np.array([np.nan if v is None else v for v in ref.stats["per_class_iou"]])
    present = np.flatnonzero(np.isfinite(ref_iou))
    width = 0.8 / max(len(cands), 1)
    for i, cand in enumerate(cands):
        iou = np.array([np.nan if v is None else v for v in cand.stats["per_class_iou"]])
        ax_bar.bar(
            np.arange(len(present)) + i * width,
            (iou[present] - ref_iou[present]) * 100,
            width,
            label=f"{cand.name} (mIoU {(cand.stats['mIoU'] - ref.stats['mIoU']) * 100:+.2f} points)",
        )
    ax_bar.axhline(0, color="black", linewidth=0.8)
    ax_bar.set_xticks(np.arange(len(present)) + width * (len(cands) - 1) / 2)
    ax_bar.set_xticklabels([classes[i] for i in present], rotation=45, ha="right")
    ax_bar.set_ylabel(f"IoU - IoU({ref.name}) [points]")
    ax_bar.set_title(f"per-class IoU vs {ref.stats['truth']}: difference to {ref.name}")
    ax_bar.legend(fontsize=8)
    worst = min(cands, key=lambda c: c.stats["agreement"]) if cands else ref
    ref_labels = np.stack([o["labels"][0] for o in ref.outputs])
    diff = np.stack([o["labels"][0] for o in worst.outputs]) != ref_labels
    k = int(diff.reshape(len(diff), -1).sum(1).argmax())
    if "scores" in ref.outputs[k] and "scores" in worst.outputs[k]:
        err = np.abs(worst.outputs[k]["scores"][0].astype(np.float32) - ref.outputs[k]["scores"][0]).max(0)
        title = f"{worst.name} vs {ref.name}: max |score error|\n{frames.names[k]}"
    else:
        err = diff[k].astype(np.float32)
        title = f"{worst.name} vs {ref.name}: pixels whose label differs\n{frames.names[k]}"
    ax_map.imshow(frames.images[k][..., ::-1])
    shown = ax_map.imshow(err, cmap="inferno", alpha=0.6)
    fig.colorbar(shown, ax=ax_map, fraction=0.03)
    ax_map.set_title(title, fontsize=9)
    ax_map.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_reference(folder: Path, frames: EvalFrames, ref: BackendResult, classes: tuple[str, ...]) -> None:
    """Frames as Polygraphy inputs (inputs.json), the reference's outputs as Polygraphy RunResults
    (reference_outputs.json), ground truth and class names: everything to replay the comparison on a GPU
    box with `pem compare --load-reference` or `polygraphy run --load-inputs ... --load-outputs ...`."""
    from polygraphy.comparator import RunResults
    from polygraphy.comparator.struct import IterationResult
    from polygraphy.json import save_json

    folder.mkdir(parents=True, exist_ok=True)
    save_json([{"image": f[None]} for f in frames.images], str(folder / "inputs.json"))
    results = RunResults()
    results.append((ref.name, [IterationResult(o, runner_name=ref.name) for o in ref.outputs]))
    results.save(str(folder / "reference_outputs.json"))
    arrays: dict[str, Any] = {"names": np.array(frames.names)}
    if frames.labels is not None:
        arrays["labels"] = frames.labels
    np.savez_compressed(folder / "truth.npz", **arrays)
    atomic_write_text(
        folder / "meta.json", json.dumps({"reference": ref.name, "classes": list(classes)}) + "\n"
    )
    print(
        f"saved frames and {ref.name} outputs to {folder}/ (replay: pem compare --load-reference {folder} "
        "--backends engine --engine ENGINE)"
    )


def load_reference(folder: Path) -> tuple[EvalFrames, BackendResult, tuple[str, ...]]:
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json

    needed = [folder / n for n in ("inputs.json", "reference_outputs.json", "truth.npz", "meta.json")]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        raise PemError(
            f"--load-reference {folder} lacks {', '.join(missing)}; write it with --save-reference"
        )
    meta = json.loads((folder / "meta.json").read_text())
    inputs = load_json(str(folder / "inputs.json"))
    results = RunResults.load(str(folder / "reference_outputs.json"))
    name, iterations = results[0]
    truth = np.load(folder / "truth.npz")
    frames = EvalFrames(
        np.concatenate([feed["image"] for feed in inputs]),
        truth.get("labels", None),
        [str(n) for n in truth["names"]],
    )
    ref = BackendResult(f"{name} (saved)", [dict(it) for it in iterations], 0.0)
    return frames, ref, tuple(meta["classes"])


def _debug_export(args: argparse.Namespace, model: Any, size: tuple[int, int], out: Path) -> Path:
    if args.onnx is not None:
        return Path(args.onnx)
    path = out / f"{model.cfg.name}_semantic_{size[0]}x{size[1]}.debug.onnx"
    print(f"exporting the FP32 graph with debug outputs to {path}")
    export_onnx(model, path, size, "semantic", debug=True, lineage=Lineage(SCRATCH))
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pem compare", description=__doc__.splitlines()[0].split(": ", 1)[1])
    src = p.add_argument_group("model")
    src.add_argument(
        "--checkpoint",
        type=Path,
        help="PEM-RT checkpoint (default: best.pt of the one training run under runs/)",
    )
    src.add_argument("--preset", help="check the checkpoint is this preset")
    src.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    src.add_argument("--random-weights", action="store_true", help=argparse.SUPPRESS)
    src.add_argument(
        "--onnx",
        type=Path,
        help="FP32 graph to use instead of exporting one (debug outputs "
        "give float error statistics; without them only label maps are compared)",
    )
    src.add_argument("--engine", type=Path, help="TensorRT engine for the 'engine' backend (needs a GPU)")
    src.add_argument("--size", type=parse_size, default=None, help="frame size HxW (default: the ONNX's)")
    data = p.add_argument_group("frames")
    data.add_argument("--data", type=Path, help="dataset root: frames + ground truth (mIoU per backend)")
    data.add_argument("--dataset", default="cityscapes", help="dataset layout of --data (default cityscapes)")
    data.add_argument("--split", default="val", help="split of --data to compare on (default val)")
    data.add_argument("--frames", default="skimage", help="without --data: image folder, video or 'skimage'")
    data.add_argument("--max-frames", type=int, default=16, help="frames to compare (default 16)")
    run = p.add_argument_group("backends")
    run.add_argument(
        "--backends",
        default="torch,onnx,fp16,int8",
        help=f"comma-separated, the first is the reference; of {', '.join(BACKENDS)}",
    )
    run.add_argument(
        "--calib-methods",
        default="percentile",
        help="INT8 calibration methods, comma-separated (entropy,max,percentile)",
    )
    run.add_argument(
        "--calib-data",
        default=None,
        help="INT8 calibration frames (default: the train split of --data, else 'skimage')",
    )
    run.add_argument("--calib-batches", type=int, default=32)
    tol = p.add_argument_group("tolerances (exit 1 when missed)")
    tol.add_argument("--min-agreement", type=float, default=None, help="label-map agreement, e.g. 0.995")
    tol.add_argument("--max-miou-drop", type=float, default=None, help="mIoU drop in points, e.g. 1.0")
    tol.add_argument("--max-rel-error", type=float, default=None, help="max relative error of float outputs")
    p.add_argument(
        "--out", type=Path, default=Path("runs/compare"), help="report folder (default runs/compare)"
    )
    p.add_argument(
        "--save-reference",
        type=Path,
        default=None,
        help="save frames + reference outputs (Polygraphy JSON) to replay on a GPU box",
    )
    p.add_argument(
        "--load-reference",
        type=Path,
        default=None,
        help="use frames + reference outputs saved with --save-reference",
    )
    return p


def _backends(args: argparse.Namespace) -> list[str]:
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown or not names:
        raise PemError(
            f"unknown backend '{(unknown or [''])[0]}' in --backends; choose from {', '.join(BACKENDS)}"
        )
    methods = [m.strip() for m in args.calib_methods.split(",") if m.strip()]
    expanded: list[str] = []
    for b in names:
        expanded += [f"int8-{m}" for m in methods] if b == "int8" else [b]
    return expanded


def _run(args: argparse.Namespace) -> int:
    if args.load_reference is not None:
        return _run_against_saved(args)
    backends = _backends(args)
    if "engine" in backends and args.engine is None:
        raise PemError("the engine backend needs --engine FILE (built with `pem build-engine`)")
    if args.engine is not None and not args.engine.is_file():
        raise PemError(f"--engine {args.engine} does not exist; build one with `pem build-engine`")
    check_output_dir(args.out, "--out")
    args.out.mkdir(parents=True, exist_ok=True)
    needs_model = args.load_reference is None and ("torch" in backends or args.onnx is None)
    model = load_model(args) if needs_model else None
    meta: ModelMeta | None = None
    if args.onnx is not None:
        if not args.onnx.is_file():
            raise PemError(f"--onnx {args.onnx} does not exist; export one with `pem export`")
        meta = ModelMeta.from_props(
            {p.key: p.value for p in onnx.load(str(args.onnx)).metadata_props}, str(args.onnx)
        )
    size = args.size or ((meta.input_height, meta.input_width) if meta else None)
    if size is None:
        raise PemError("--size HxW is needed to export the comparison graph (e.g. --size 512x1024)")
    if meta is not None and (meta.input_height, meta.input_width) != tuple(size):
        raise PemError(
            f"--size {size[0]}x{size[1]} does not match {args.onnx} "
            f"({meta.input_height}x{meta.input_width}); drop --size or re-export"
        )
    frames = load_frames(args, size)
    classes = model.cfg.dataset.classes if model is not None else (meta.classes if meta else ())
    fp32 = _debug_export(args, model, size, args.out) if any(b != "torch" for b in backends) else None
    results: list[BackendResult] = []
    for name in backends:
        start = time.perf_counter()
        print(f"running {name} on {len(frames.images)} frames")
        if name == "torch":
            outputs = run_torch(model, frames.images)
        elif name == "engine":
            outputs = run_engine(args.engine, frames.images)
        else:
            assert fp32 is not None
            outputs = run_onnx(_onnx_variant(args, name, fp32, size), frames.images)
        results.append(BackendResult(name, outputs, time.perf_counter() - start))
        if len(results) == 1 and args.save_reference is not None:
            save_reference(args.save_reference, frames, results[0], classes)
    return _report(args, results, frames, classes)


def _run_against_saved(args: argparse.Namespace) -> int:
    """Candidates (e.g. an engine on the GPU box) against frames and outputs saved elsewhere."""
    frames, ref, classes = load_reference(args.load_reference)
    results = [ref]
    for name in _backends(args):
        start = time.perf_counter()
        if name == "engine":
            if args.engine is None or not args.engine.is_file():
                raise PemError("the engine backend needs --engine FILE (built with `pem build-engine`)")
            outputs = run_engine(args.engine, frames.images)
        elif name == "onnx" and args.onnx is not None:
            outputs = run_onnx(args.onnx, frames.images)
        else:
            raise PemError(
                f"with --load-reference, compare an --engine or an --onnx; '{name}' needs the model"
            )
        results.append(BackendResult(name, outputs, time.perf_counter() - start))
    return _report(args, results, frames, classes)


def _onnx_variant(args: argparse.Namespace, name: str, fp32: Path, size: tuple[int, int]) -> Path:
    """The graph backend ``name`` runs: the FP32 export, its FP16 conversion or an INT8 calibration."""
    if name == "onnx":
        return fp32
    if name == "fp16":
        path = args.out / f"{fp32.stem}.fp16.onnx"
        convert_fp16(fp32, path, read_frames(args.calib_data or "skimage", size, 16), role=SCRATCH)
        return path
    method = name.split("-", 1)[1]
    path = args.out / f"{fp32.stem}.int8-{method}.onnx"
    calib = args.calib_data or (_train_split_images(args) if args.data else "skimage")
    cache = args.out / f"{fp32.stem}.{method}.calib"
    calibrate(fp32, calib, path, cache, method, args.calib_batches, role=SCRATCH)
    return path


def _train_split_images(args: argparse.Namespace) -> Path:
    """The image folder of the dataset's train split (held out from the compared split)."""
    from training.data.loader import open_dataset

    ds = open_dataset(args.dataset, args.data, "train", panoptic=False)
    if len(ds) == 0:
        raise PemError(f"--data {args.data} has no train split to calibrate on; pass --calib-data")
    folder = args.out / "calibration_frames"
    folder.mkdir(parents=True, exist_ok=True)
    for r in ds.records[: args.calib_batches]:
        target = folder / r.image.name
        if not target.exists():
            target.write_bytes(r.image.read_bytes())
    return folder


def _report(
    args: argparse.Namespace, results: list[BackendResult], frames: EvalFrames, classes: tuple[str, ...]
) -> int:
    ref = results[0]
    ref.stats = segmentation_stats(ref, ref, frames, len(classes))
    for cand in results[1:]:
        cand.stats = segmentation_stats(ref, cand, frames, len(classes))
        cand.stats["errors"] = polygraphy_stats(ref, cand)
    print(f"\n{'backend':<18}{'agreement':>11}{'mIoU':>9}{'d mIoU':>9}{'max rel err':>13}{'seconds':>9}")
    failures = []
    for r in results:
        errs = r.stats.get("errors", {})
        rel = max((e["max_rel"] for e in errs.values()), default=float("nan"))
        drop = (ref.stats["mIoU"] - r.stats["mIoU"]) * 100
        print(
            f"{r.name:<18}{r.stats['agreement'] * 100:>10.2f}%{r.stats['mIoU'] * 100:>9.2f}{-drop:>+9.2f}"
            f"{rel:>13.3g}{r.seconds:>9.1f}"
        )
        if r is ref:
            continue
        if args.min_agreement is not None and r.stats["agreement"] < args.min_agreement:
            failures.append(f"{r.name}: agreement {r.stats['agreement']:.4f} < {args.min_agreement}")
        if args.max_miou_drop is not None and drop > args.max_miou_drop:
            failures.append(f"{r.name}: mIoU drop {drop:.2f} points > {args.max_miou_drop}")
        if args.max_rel_error is not None and rel > args.max_rel_error:
            failures.append(f"{r.name}: max relative error {rel:.3g} > {args.max_rel_error}")
    print(f"(mIoU against {ref.stats['truth']}; agreement = pixels with the same label as {ref.name})")
    report = {
        "reference": ref.name,
        "frames": len(frames.images),
        "truth": ref.stats["truth"],
        "classes": list(classes),
        "backends": {r.name: {"seconds": r.seconds, **r.stats} for r in results},
        "failures": failures,
    }
    atomic_write_text(args.out / "report.json", json.dumps(report, indent=2) + "\n")
    write_picture(args.out / "report.png", results, frames, classes)
    print(f"wrote {args.out / 'report.json'} and {args.out / 'report.png'}")
    for f in failures:
        print(f"tolerance missed: {f}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("compare", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
