"""`python export/compare.py --checkpoint runs/x/best.pt --data DATASET`: how far is each deployed precision
from the trained model? PyTorch eager, ONNX FP32 / FP16 / INT8 (ONNX Runtime) and a TensorRT engine run on
the same frames; Polygraphy's comparator gives per-output abs/rel errors, and we add what Polygraphy lacks:
label-map pixel agreement and mIoU against ground truth per backend. Writes report.json + report.png and
exits non-zero when a tolerance given on the command line is missed. From Python:
``compare(CompareConfig(model=ModelSource(Path("runs/x/best.pt")), data=Path("DATASET")))``.

Every graph is exported with ``--postprocess`` (exact or fast); a backend written ``NAME:MODE`` (e.g.
``--backends onnx:exact,onnx:fast``) uses that mode instead, which compares the two post-processings.
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

from calibration.calibrate import CalibrationConfig
from calibration.frames import read_frames
from export.eval_frames import EvalFrames, EvalSource, load_eval_frames
from export.export_onnx import ModelSource, export_onnx, is_quantized, load_model, model_meta
from export.int8_budget import BudgetRequest, calibrate_within_budget
from export.int8_calibrate import calibrate_for_tensorrt
from export.int8_eval import HeldOut
from export.precision import convert_fp16
from export.qat_export import QAT_OPSET, export_qdq_onnx
from pem_rt.command import run_command
from pem_rt.errors import PemError
from pem_rt.files import atomic_write_text
from pem_rt.lineage import SCRATCH, Lineage
from pem_rt.model_meta import DEFAULT_POSTPROCESS, POSTPROCESS_MODES, ModelMeta
from pem_rt.ort_session import cpu_session
from pem_rt.paths import check_output_dir
from pem_rt.sizes import size_arg
from training.metrics import SemanticMetric

BACKENDS = ("torch", "onnx", "fp16", "int8", "int8-budget", "int8-qat", "engine")
FLOAT_OUTPUTS = ("class_logits", "mask_logits", "scores")


@dataclass(frozen=True)
class CompareConfig:
    """What `pem compare` compares (its flags, same names).

    Args:
        model: the PyTorch model (checkpoint, preset, weights); onnx: an FP32 graph to use instead of
            exporting one; engine: the TensorRT engine of the "engine" backend; size: frame size HxW
            (default: the ONNX's).
        data, dataset, split: a dataset split to take frames and ground truth from; else ``frames`` (an
            image folder, video or "skimage"); max_frames: how many.
        backends: of BACKENDS, the first is the reference; "int8" runs once per ``calib_methods``;
            "int8-budget" is INT8 within ``int8_budget`` mIoU points (export/int8_budget.py, measured
            on these frames, calibrated with the first method); "int8-qat" the Q/DQ graph of
            ``qat_checkpoint`` (`pem train --qat`);
            each may be NAME:MODE to use that post-processing instead of ``postprocess``;
            calib_data (default: the train split of ``data``, else "skimage"), calib_batches: INT8 frames.
        min_agreement, max_miou_drop (points), max_rel_error: tolerances (None = not checked).
        out: report folder; save_reference / load_reference: frames + reference outputs to replay.
    """

    model: ModelSource = field(default_factory=ModelSource)
    onnx: Path | None = None
    engine: Path | None = None
    size: tuple[int, int] | None = None
    data: Path | None = None
    dataset: str = "cityscapes"
    split: str = "val"
    frames: str = "skimage"
    max_frames: int = 16
    backends: tuple[str, ...] = ("torch", "onnx", "fp16", "int8")
    calib_methods: tuple[str, ...] = ("percentile",)
    postprocess: str = DEFAULT_POSTPROCESS
    calib_data: str | None = None
    calib_batches: int = 32
    int8_budget: float = 0.5
    qat_checkpoint: Path | None = None
    min_agreement: float | None = None
    max_miou_drop: float | None = None
    max_rel_error: float | None = None
    out: Path = Path("runs/compare")
    save_reference: Path | None = None
    load_reference: Path | None = None


@dataclass(frozen=True)
class BackendSpec:
    """One entry of --backends: its report name, what runs it (a BACKENDS name or int8-METHOD) and the
    post-processing mode of its graph."""

    name: str
    kind: str
    postprocess: str


@dataclass
class BackendResult:
    name: str
    outputs: list[dict[str, np.ndarray]]  # one dict per frame
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)


def load_frames(config: CompareConfig, size: tuple[int, int]) -> EvalFrames:
    return load_eval_frames(
        EvalSource(config.data, config.dataset, config.split, config.frames), size, config.max_frames
    )


def run_torch(
    model: Any, frames: np.ndarray, postprocess: str = DEFAULT_POSTPROCESS
) -> list[dict[str, np.ndarray]]:
    import torch

    from export.deploy_model import DeployModel

    deploy = DeployModel(model, "semantic", debug=True, postprocess=postprocess).eval()
    outs = []
    with torch.no_grad():
        for frame in frames:
            tensors = deploy(torch.from_numpy(frame[None]))
            outs.append({n: t.numpy() for n, t in zip(deploy.output_names, tensors, strict=True)})
    return outs


def run_onnx(path: Path, frames: np.ndarray) -> list[dict[str, np.ndarray]]:
    session = cpu_session(path)
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


def _debug_export(
    config: CompareConfig,
    model: Any,
    size: tuple[int, int],
    postprocess: str,
    meta: ModelMeta | None,
) -> Path:
    if config.onnx is not None:
        if meta is not None and meta.postprocess != postprocess:
            raise PemError(
                f"--onnx {config.onnx} has {meta.postprocess} post-processing, a backend asks for "
                f"{postprocess}; drop the :{postprocess} suffix or --onnx"
            )
        return Path(config.onnx)
    path = config.out / f"{model.cfg.name}_semantic_{size[0]}x{size[1]}.{postprocess}.debug.onnx"
    print(f"exporting the FP32 graph ({postprocess} post-processing) with debug outputs to {path}")
    export_onnx(model, path, size, "semantic", debug=True, postprocess=postprocess, lineage=Lineage(SCRATCH))
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
    src.add_argument("--size", type=size_arg, default=None, help="frame size HxW (default: the ONNX's)")
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
        help=f"comma-separated, the first is the reference; of {', '.join(BACKENDS)}, each optionally "
        f"NAME:MODE with MODE one of {', '.join(POSTPROCESS_MODES)} (e.g. onnx:exact,onnx:fast)",
    )
    run.add_argument(
        "--postprocess",
        choices=POSTPROCESS_MODES,
        default=DEFAULT_POSTPROCESS,
        help=f"post-processing of the graphs without a :MODE suffix (default {DEFAULT_POSTPROCESS})",
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
    run.add_argument(
        "--int8-budget",
        type=float,
        default=0.5,
        metavar="D",
        help="int8-budget backend: the mIoU drop (points) its search keeps within (default 0.5)",
    )
    run.add_argument(
        "--qat-checkpoint",
        type=Path,
        default=None,
        help="int8-qat backend: the checkpoint `pem train --qat` wrote (its Q/DQ graph is exported)",
    )
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


def parse_backends(
    names: Sequence[str], calib_methods: Sequence[str], postprocess: str = DEFAULT_POSTPROCESS
) -> list[BackendSpec]:
    """--backends as specs: int8 expands to one backend per calibration method, NAME:MODE sets the mode."""
    specs: list[BackendSpec] = []
    for entry in names:
        kind, _, mode = entry.partition(":")
        if kind not in BACKENDS:
            raise PemError(f"unknown backend '{kind}' in --backends; choose from {', '.join(BACKENDS)}")
        if mode and mode not in POSTPROCESS_MODES:
            raise PemError(
                f"--backends {entry}: post-processing '{mode}' is not one of {', '.join(POSTPROCESS_MODES)}"
            )
        suffix = f":{mode}" if mode else ""
        kinds = [f"int8-{m}" for m in calib_methods] if kind == "int8" else [kind]
        if kind in ("int8-budget", "int8-qat") and mode and mode != DEFAULT_POSTPROCESS:
            raise PemError(f"--backends {entry}: {kind} has the {DEFAULT_POSTPROCESS} post-processing only")
        specs += [BackendSpec(f"{k}{suffix}", k, mode or postprocess) for k in kinds]
    if not specs:
        raise PemError(f"--backends is empty; choose from {', '.join(BACKENDS)}")
    return specs


def _backends(config: CompareConfig) -> list[BackendSpec]:
    return parse_backends(config.backends, config.calib_methods, config.postprocess)


def compare(config: CompareConfig) -> int:
    """Run every backend of ``config`` on the same frames, print the table, write report.json and
    report.png under ``config.out``; returns 1 when a tolerance is missed, else 0."""
    if config.load_reference is not None:
        return _run_against_saved(config, config.load_reference)
    backends = _backends(config)
    kinds = {b.kind for b in backends}
    if "engine" in kinds and config.engine is None:
        raise PemError("the engine backend needs --engine FILE (built with `pem build-engine`)")
    if config.engine is not None and not config.engine.is_file():
        raise PemError(f"--engine {config.engine} does not exist; build one with `pem build-engine`")
    check_output_dir(config.out, "--out")
    config.out.mkdir(parents=True, exist_ok=True)
    model = load_model(config.model)[0] if ("torch" in kinds or config.onnx is None) else None
    meta: ModelMeta | None = None
    if config.onnx is not None:
        if not config.onnx.is_file():
            raise PemError(f"--onnx {config.onnx} does not exist; export one with `pem export`")
        meta = ModelMeta.from_onnx(config.onnx)
    size = config.size or ((meta.input_height, meta.input_width) if meta else None)
    if size is None:
        raise PemError("--size HxW is needed to export the comparison graph (e.g. --size 512x1024)")
    if meta is not None and (meta.input_height, meta.input_width) != tuple(size):
        raise PemError(
            f"--size {size[0]}x{size[1]} does not match {config.onnx} "
            f"({meta.input_height}x{meta.input_width}); drop --size or re-export"
        )
    frames = load_frames(config, size)
    classes = model.cfg.dataset.classes if model is not None else (meta.classes if meta else ())
    graphs: dict[str, Path] = {}  # post-processing mode -> FP32 graph with debug outputs
    results: list[BackendResult] = []
    for spec in backends:
        start = time.perf_counter()
        print(f"running {spec.name} on {len(frames.images)} frames")
        if spec.kind == "torch":
            outputs = run_torch(model, frames.images, spec.postprocess)
        elif spec.kind == "engine":
            assert config.engine is not None  # checked above
            outputs = run_engine(config.engine, frames.images)
        else:
            if spec.postprocess not in graphs:
                graphs[spec.postprocess] = _debug_export(config, model, size, spec.postprocess, meta)
            fp32 = graphs[spec.postprocess]
            outputs = run_onnx(_onnx_variant(config, spec.kind, fp32, size), frames.images)
        results.append(BackendResult(spec.name, outputs, time.perf_counter() - start))
        if len(results) == 1 and config.save_reference is not None:
            save_reference(config.save_reference, frames, results[0], classes)
    return _report(config, results, frames, classes)


def _run_against_saved(config: CompareConfig, saved: Path) -> int:
    """Candidates (e.g. an engine on the GPU box) against frames and outputs saved elsewhere."""
    frames, ref, classes = load_reference(saved)
    results = [ref]
    for spec in _backends(config):
        name = spec.name
        start = time.perf_counter()
        if spec.kind == "engine":
            if config.engine is None or not config.engine.is_file():
                raise PemError("the engine backend needs --engine FILE (built with `pem build-engine`)")
            outputs = run_engine(config.engine, frames.images)
        elif spec.kind == "onnx" and config.onnx is not None:
            outputs = run_onnx(config.onnx, frames.images)
        else:
            raise PemError(
                f"with --load-reference, compare an --engine or an --onnx; '{name}' needs the model"
            )
        results.append(BackendResult(name, outputs, time.perf_counter() - start))
    return _report(config, results, frames, classes)


def _onnx_variant(config: CompareConfig, name: str, fp32: Path, size: tuple[int, int]) -> Path:
    """The graph backend ``name`` runs: the FP32 export, its FP16 conversion or an INT8 calibration."""
    if name == "onnx":
        return fp32
    if name == "int8-qat":
        return _qat_graph(config, fp32, size)
    if name == "int8-budget":
        return _budget_graph(config, fp32)
    if name == "fp16":
        path = config.out / f"{fp32.stem}.fp16.onnx"
        convert_fp16(fp32, path, read_frames(config.calib_data or "skimage", size, 16), role=SCRATCH)
        return path
    method = name.split("-", 1)[1]
    path = config.out / f"{fp32.stem}.int8-{method}.onnx"
    calibrate_for_tensorrt(fp32, path, _int8_config(config, fp32, method), role=SCRATCH)
    return path


def _int8_config(config: CompareConfig, fp32: Path, method: str) -> CalibrationConfig:
    calib = config.calib_data or (_train_split_images(config, config.data) if config.data else "skimage")
    return CalibrationConfig(
        calib, method, config.calib_batches, cache=config.out / f"{fp32.stem}.{method}.calib"
    )


def _budget_graph(config: CompareConfig, fp32: Path) -> Path:
    """INT8 within --int8-budget, measured on the compared frames (held out from calibration)."""
    path = config.out / f"{fp32.stem}.int8-budget.onnx"
    frames = None if config.data is not None else config.frames
    held_out = HeldOut(config.data, config.dataset, config.split, frames, config.max_frames)
    calib = _int8_config(config, fp32, config.calib_methods[0])
    result = calibrate_within_budget(fp32, path, calib, BudgetRequest(config.int8_budget, held_out), SCRATCH)
    print(f"int8-budget: model parts kept out of INT8: {', '.join(result.excluded) or 'none'}")
    return path


def _qat_graph(config: CompareConfig, fp32: Path, size: tuple[int, int]) -> Path:
    """The Q/DQ graph of --qat-checkpoint (at the compared size)."""
    if config.qat_checkpoint is None:
        raise PemError("the int8-qat backend needs --qat-checkpoint RUN/best.pt (from `pem train --qat`)")
    model = load_model(ModelSource(config.qat_checkpoint))[0]
    if not is_quantized(model):
        raise PemError(f"--qat-checkpoint {config.qat_checkpoint} was not trained with `pem train --qat`")
    reference = ModelMeta.from_onnx(fp32)
    if model.cfg.dataset.classes != reference.classes:
        raise PemError(f"--qat-checkpoint {config.qat_checkpoint} has other classes than the compared model")
    path = config.out / f"{fp32.stem}.int8-qat.onnx"
    meta = model_meta(model, "semantic", size, 1, QAT_OPSET, DEFAULT_POSTPROCESS)
    export_qdq_onnx(model, path, meta, role=SCRATCH)
    return path


def _train_split_images(config: CompareConfig, data: Path) -> Path:
    """The image folder of the dataset's train split (held out from the compared split)."""
    from training.data.loader import open_dataset

    ds = open_dataset(config.dataset, data, "train", panoptic=False)
    if len(ds) == 0:
        raise PemError(f"--data {data} has no train split to calibrate on; pass --calib-data")
    folder = config.out / "calibration_frames"
    folder.mkdir(parents=True, exist_ok=True)
    for r in ds.records[: config.calib_batches]:
        target = folder / r.image.name
        if not target.exists():
            target.write_bytes(r.image.read_bytes())
    return folder


def _report(
    config: CompareConfig, results: list[BackendResult], frames: EvalFrames, classes: tuple[str, ...]
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
        if config.min_agreement is not None and r.stats["agreement"] < config.min_agreement:
            failures.append(f"{r.name}: agreement {r.stats['agreement']:.4f} < {config.min_agreement}")
        if config.max_miou_drop is not None and drop > config.max_miou_drop:
            failures.append(f"{r.name}: mIoU drop {drop:.2f} points > {config.max_miou_drop}")
        if config.max_rel_error is not None and rel > config.max_rel_error:
            failures.append(f"{r.name}: max relative error {rel:.3g} > {config.max_rel_error}")
    print(f"(mIoU against {ref.stats['truth']}; agreement = pixels with the same label as {ref.name})")
    report = {
        "reference": ref.name,
        "frames": len(frames.images),
        "truth": ref.stats["truth"],
        "classes": list(classes),
        "backends": {r.name: {"seconds": r.seconds, **r.stats} for r in results},
        "failures": failures,
    }
    atomic_write_text(config.out / "report.json", json.dumps(report, indent=2) + "\n")
    write_picture(config.out / "report.png", results, frames, classes)
    print(f"wrote {config.out / 'report.json'} and {config.out / 'report.png'}")
    for f in failures:
        print(f"tolerance missed: {f}", file=sys.stderr)
    return 1 if failures else 0


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def config_from_args(args: argparse.Namespace) -> CompareConfig:
    return CompareConfig(
        model=ModelSource.from_args(args),
        onnx=args.onnx,
        engine=args.engine,
        size=args.size,
        data=args.data,
        dataset=args.dataset,
        split=args.split,
        frames=args.frames,
        max_frames=args.max_frames,
        backends=_comma_list(args.backends),
        calib_methods=_comma_list(args.calib_methods),
        postprocess=args.postprocess,
        calib_data=args.calib_data,
        calib_batches=args.calib_batches,
        int8_budget=args.int8_budget,
        qat_checkpoint=args.qat_checkpoint,
        min_agreement=args.min_agreement,
        max_miou_drop=args.max_miou_drop,
        max_rel_error=args.max_rel_error,
        out=args.out,
        save_reference=args.save_reference,
        load_reference=args.load_reference,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("compare", build_parser(), lambda args: compare(config_from_args(args)), argv)


if __name__ == "__main__":
    sys.exit(main())
