"""`python export/export_onnx.py --checkpoint runs/x/best.pt --size 512x1024`: checkpoint -> deployable ONNX.

The graph takes uint8 BGR NHWC frames and returns small integer maps (export/deploy_model.py); it uses
standard ONNX ops only (DeformConv, ArgMax, GatherElements, ...) and runs in ONNX Runtime. Written with
the torch.onnx dynamo exporter (opset >= 19 for DeformConv); model metadata goes to metadata_props.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from export.deploy_model import DeployModel
from pem_rt.artifacts import runs_root
from pem_rt.command import run_command
from pem_rt.engine_meta import sha256_file
from pem_rt.errors import PemError
from pem_rt.files import atomic_path
from pem_rt.lineage import REFERENCE, Lineage, pick_checkpoint, stamp
from pem_rt.model_meta import DEFAULT_POSTPROCESS, POSTPROCESS_MODES, ModelMeta
from pem_rt.ort_session import cpu_session
from pem_rt.paths import check_output_file
from pem_rt.sizes import size_arg
from training.checkpoint import load_checkpoint, load_state
from training.model import PEM, build_model, get_preset
from training.model.weights import load_official

DEFAULT_OPSET = 19
IR_VERSION = 9  # what opset 19 needs; older ONNX Runtime and TensorRT parsers refuse newer IR versions


# INT8 arithmetic in ONNX Runtime vs PyTorch's fake quantisation: roundings differ on a few pixels
QAT_AGREEMENT = 0.98


def _exporter_versions() -> str:
    try:
        version = importlib.metadata.version("pem-rt")
    except importlib.metadata.PackageNotFoundError:
        version = "source"
    return f"pem-rt {version}; torch {torch.__version__}; onnx {onnx.__version__}"


def check_size(size: tuple[int, int], divisor: int = 32) -> None:
    h, w = size
    if h % divisor or w % divisor:
        hint = f"{round(h / divisor) * divisor or divisor}x{round(w / divisor) * divisor or divisor}"
        raise PemError(f"--size {h}x{w} is not a multiple of {divisor}; use e.g. {hint}")


def model_meta(
    model: PEM,
    task: str,
    size: tuple[int, int],
    batch: int,
    opset: int,
    postprocess: str = DEFAULT_POSTPROCESS,
) -> ModelMeta:
    cfg = model.cfg
    return ModelMeta(
        name=cfg.name,
        task=task,
        classes=cfg.dataset.classes,
        palette=cfg.dataset.palette,
        thing_ids=cfg.dataset.thing_ids,
        input_height=size[0],
        input_width=size[1],
        batch=batch,
        num_queries=cfg.decoder.num_queries,
        object_mask_threshold=cfg.inference.object_mask_threshold,
        overlap_threshold=cfg.inference.overlap_threshold,
        pixel_mean=cfg.pixel_mean,
        pixel_std=cfg.pixel_std,
        opset=opset,
        exporter=_exporter_versions(),
        cross_attention=cfg.decoder.cross_attention,
        decoder_layers=cfg.decoder.num_layers,
        postprocess=postprocess,
    )


def export_onnx(  # noqa: PLR0913 (one parameter per export flag; all but the first four have defaults)
    model: PEM,
    path: Path,
    size: tuple[int, int],
    task: str,
    batch: int = 1,
    debug: bool = False,
    opset: int = DEFAULT_OPSET,
    postprocess: str = DEFAULT_POSTPROCESS,
    lineage: Lineage | None = None,
) -> ModelMeta:
    """Export ``model`` to ``path`` (atomically). ``batch=0`` makes the batch dimension dynamic;
    ``postprocess`` is "exact" or "fast" (export/deploy_model.py), recorded in the metadata.
    ``lineage``: what the graph is (a reference graph by default) and the checkpoint's SHA-256."""
    check_size(size, model.cfg.size_divisibility)
    deploy = DeployModel(model, task, debug, postprocess).eval()
    example = torch.randint(0, 256, (max(batch, 2) if batch == 0 else batch, *size, 3), dtype=torch.uint8)
    dynamic = ({0: torch.export.Dim("batch", min=1, max=256)},) if batch == 0 else None
    logging.getLogger("onnxscript").setLevel(logging.ERROR)  # constant-folding chatter, not problems
    with torch.no_grad():
        program = torch.onnx.export(
            deploy,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["image"],
            output_names=deploy.output_names,
            dynamic_shapes=dynamic,
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise PemError("torch.onnx.export returned no program; update torch/onnxscript")
    proto = program.model_proto
    proto.ir_version = IR_VERSION
    meta = model_meta(model, task, size, batch, opset, postprocess)
    set_metadata(proto, meta.to_props())
    stamp(proto, lineage or Lineage(REFERENCE))
    onnx.checker.check_model(proto, full_check=True)
    with atomic_path(path) as tmp:
        onnx.save(proto, tmp)
    return meta


def set_metadata(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    kept = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)


def verify_with_onnxruntime(
    model: PEM,
    path: Path,
    task: str,
    size: tuple[int, int],
    batch: int,
    postprocess: str = DEFAULT_POSTPROCESS,
) -> float:
    """Run one random frame through PyTorch and ONNX Runtime; return the fraction of equal output pixels."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (max(batch, 1), *size, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = DeployModel(model, task, postprocess=postprocess).eval()(torch.from_numpy(frame))
    session = cpu_session(path)
    got = session.run(None, {"image": frame})
    key = 0 if task == "semantic" else 2  # labels / winner
    return float((got[key] == expected[key].numpy()).mean())


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from (`--checkpoint`, `--preset`, `--weights`, `--random-weights`).

    Args:
        checkpoint: a PEM-RT checkpoint; None = best.pt of the one training run under runs/ (unless
            weights are named).
        preset: the preset the model must be; required with ``weights`` or ``random_weights``.
        weights: official PEM (detectron2) weights for ``preset``.
        random_weights: ``preset`` with random weights (tests, benchmarks).
    """

    checkpoint: Path | None = None
    preset: str | None = None
    weights: Path | None = None
    random_weights: bool = False

    @staticmethod
    def from_args(args: argparse.Namespace) -> ModelSource:
        return ModelSource(args.checkpoint, args.preset, args.weights, args.random_weights)


def load_model(source: ModelSource) -> tuple[PEM, Path | None]:
    """The model in eval mode and the checkpoint it came from (None for official or random weights)."""
    if source.weights or source.random_weights:
        if not source.preset:
            raise PemError("--weights/--random-weights need --preset to say which model they are")
        model = build_model(get_preset(source.preset))
        if source.weights:
            print(load_official(model, source.weights).summary())
        return model.eval(), None
    path = source.checkpoint or pick_checkpoint("--checkpoint")
    ckpt = load_checkpoint(path)
    if source.preset and source.preset != ckpt.config.name:
        get_preset(source.preset)  # an unknown name is its own error
        raise PemError(
            f"{path} holds a {ckpt.config.name} model, not {source.preset}; drop --preset or pass "
            f"--preset {ckpt.config.name}"
        )
    model = build_model(ckpt.config)
    if "qat" in ckpt.extra:  # `pem train --qat`: its fake quantizers' ranges are in the state dict
        from training.qat import restore_quantizers

        restore_quantizers(model)
    load_state(model, ckpt.model, path)
    return model.eval(), Path(path)


def is_quantized(model: PEM) -> bool:
    """True for a model with fake quantizers (a `pem train --qat` checkpoint)."""
    return any(type(m).__name__ == "TensorQuantizer" for m in model.modules())


def default_output(checkpoint: Path | None, model: PEM, task: str, size: tuple[int, int]) -> Path:
    folder = checkpoint.parent if checkpoint else runs_root() / "export"
    return folder / f"{model.cfg.name}_{task}_{size[0]}x{size[1]}.onnx"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pem export", description=__doc__.splitlines()[0].split(": ", 1)[1])
    src = p.add_argument_group("model source (default: best.pt of the one training run under runs/)")
    src.add_argument("--checkpoint", type=Path, help="PEM-RT checkpoint written by `pem train`")
    src.add_argument("--preset", help="check the checkpoint is this preset; required with --weights")
    src.add_argument("--weights", type=Path, help="official PEM (detectron2) checkpoint, with --preset")
    src.add_argument("--random-weights", action="store_true", help="random weights (tests, benchmarks)")
    p.add_argument("--size", type=size_arg, required=True, help="frame size HxW, multiples of 32")
    p.add_argument("--task", choices=("semantic", "panoptic"), help="default: the model's task")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="dynamic batch dimension")
    p.add_argument(
        "--debug-outputs",
        action="store_true",
        help="also output the float logits/scores before the argmax (to compare backends)",
    )
    p.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= 19, default {DEFAULT_OPSET})"
    )
    p.add_argument(
        "--postprocess",
        choices=POSTPROCESS_MODES,
        default=DEFAULT_POSTPROCESS,
        help="exact: every query mask up-sampled to the frame, as the reference; fast: labels at mask "
        "resolution, only the pixels on edges between classes computed as exact does (BENCHMARKS.md "
        f"measures both; default {DEFAULT_POSTPROCESS})",
    )
    p.add_argument("--out", type=Path, help="output .onnx (default: beside the checkpoint)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    return p


def _run(args: argparse.Namespace) -> int:
    if args.opset < 19:
        raise PemError(f"--opset {args.opset} is too old: DeformConv needs opset 19 or newer")
    if args.batch < 1:
        raise PemError(f"--batch must be >= 1, got {args.batch}; use --dynamic-batch for a dynamic one")
    model, checkpoint = load_model(ModelSource.from_args(args))
    task = args.task or ("panoptic" if model.cfg.inference.task == "panoptic" else "semantic")
    check_size(args.size, model.cfg.size_divisibility)
    batch = 0 if args.dynamic_batch else args.batch
    out = args.out or default_output(checkpoint, model, task, args.size)
    check_output_file(out, "--out", "model.onnx")
    start = time.perf_counter()
    parent = sha256_file(checkpoint) if checkpoint else ""
    if is_quantized(model):
        return _export_qat(model, out, args, batch, parent)
    meta = export_onnx(
        model,
        out,
        args.size,
        task,
        batch,
        args.debug_outputs,
        args.opset,
        args.postprocess,
        Lineage(REFERENCE, parent),
    )
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {meta.task}, {meta.postprocess} post-processing, "
        f"outputs {', '.join(meta.outputs)}) "
        f"in {time.perf_counter() - start:.0f} s"
    )
    if not args.no_verify:
        agreement = verify_with_onnxruntime(model, out, task, args.size, batch, args.postprocess)
        print(f"ONNX Runtime vs PyTorch on a random frame: {agreement * 100:.3f}% of pixels equal")
        if agreement < 0.999:
            print("error: ONNX Runtime disagrees with PyTorch on more than 0.1% of pixels", file=sys.stderr)
            return 1
    return 0


def _export_qat(model: PEM, out: Path, args: argparse.Namespace, batch: int, parent: str) -> int:
    """A QAT checkpoint: its Q/DQ graph (export/qat_export.py), checked against the fake-quantised model."""
    from export.qat_export import QAT_OPSET, export_qdq_onnx

    if args.postprocess != DEFAULT_POSTPROCESS or args.debug_outputs:
        raise PemError("a QAT checkpoint exports with the default post-processing and no debug outputs")
    start = time.perf_counter()
    meta = model_meta(model, "semantic", args.size, batch, QAT_OPSET, DEFAULT_POSTPROCESS)
    export_qdq_onnx(model, out, meta, parent)
    print(f"wrote {out} (Q/DQ INT8 graph of a QAT checkpoint) in {time.perf_counter() - start:.0f} s")
    if not args.no_verify:
        agreement = verify_with_onnxruntime(model, out, "semantic", args.size, batch)
        print(
            f"ONNX Runtime INT8 vs PyTorch fake quantisation on a random frame: {agreement * 100:.3f}% equal"
        )
        if agreement < QAT_AGREEMENT:
            print(
                f"error: they disagree on more than {(1 - QAT_AGREEMENT) * 100:.0f}% of pixels",
                file=sys.stderr,
            )
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("export", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
