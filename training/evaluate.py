"""`python training/evaluate.py --checkpoint RUN/best.pt --data DIR`: mIoU (and PQ for panoptic models)
of a checkpoint on a dataset split, or `--predictions DIR` to score saved label maps from any backend
(ONNX Runtime, TensorRT, ...) against the ground truth. Prints per-class tables, writes JSON.

Prediction files, one per image, named by the image's stem (its file name without extension)::

    DIR/<stem>.png             8-bit label map at the image's size: contiguous class ids (Cityscapes
                               trainIds 0..18, ADE20K 0..149, COCO 0..132), 255 = void
    DIR/<stem>_panoptic.png    (for PQ) RGB segment ids, id = R + 256 G + 256^2 B, 0 = void
    DIR/<stem>_panoptic.json   (for PQ) {"segments_info": [{"id": ..., "category_id": <contiguous class>}]}

`--save-predictions DIR` writes exactly these files while evaluating a checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from pem_rt.command import run_command
from pem_rt.errors import PemError
from training.checkpoint import load_checkpoint, load_state
from training.data.loader import DATASET_NAMES, dataset_defaults, open_dataset
from training.data.spec import spec_file
from training.evaluator import EvalResult, evaluate_files, evaluate_model
from training.model import build_model
from training.model.config import with_ablation


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pem evaluate", description="mIoU / PQ of a checkpoint, or of saved prediction files."
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="PEM-RT checkpoint (.pt) to run on the split")
    src.add_argument("--predictions", type=Path, help="folder of saved prediction files (see --help text)")
    p.add_argument("--data", type=Path, required=True, help="dataset root")
    p.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        default=None,
        help="dataset format (default: the model's; custom where DIR/dataset.yaml exists)",
    )
    p.add_argument("--split", default="val", help="split to evaluate (default val)")
    p.add_argument(
        "--task", choices=("semantic", "panoptic"), default=None, help="semantic: mIoU; panoptic: + PQ"
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    p.add_argument("--short-side", type=int, default=None, help="test-time short side (default per dataset)")
    p.add_argument("--save-predictions", type=Path, default=None, help="write prediction files here")
    p.add_argument("--json", type=Path, default=None, help="write the results here (default beside input)")
    p.add_argument("--device", default=None, help="cpu or cuda (default cuda if available)")
    return p


def _run(args: argparse.Namespace) -> None:
    from pem_rt.paths import check_output_dir, check_output_file

    check_output_file(args.json, "--json", "eval.json")
    check_output_dir(args.save_predictions, "--save-predictions")
    if args.checkpoint is not None:
        ckpt = load_checkpoint(args.checkpoint)
        cfg = ckpt.config if args.task is None else with_ablation(ckpt.config, task=args.task)
        dataset = args.dataset or cfg.dataset.name
        panoptic = cfg.inference.task == "panoptic"
        source = open_dataset(dataset, args.data, args.split, panoptic)
        if cfg.num_classes != len(source.meta.classes):
            raise PemError(
                f"checkpoint {args.checkpoint} predicts {cfg.num_classes} classes ({cfg.dataset.name}) but "
                f"dataset {dataset} has {len(source.meta.classes)}; evaluate it on its own dataset"
            )
        if cfg.dataset.classes != source.meta.classes:
            raise PemError(
                f"checkpoint {args.checkpoint} predicts the classes {list(cfg.dataset.classes)} but "
                f"{args.data} names {list(source.meta.classes)}; evaluate it on the dataset it was trained on"
            )
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = build_model(cfg)
        load_state(model, ckpt.model, args.checkpoint)
        model.to(device).eval()
        short = args.short_side if args.short_side is not None else dataset_defaults(dataset)[2]
        if args.save_predictions:
            args.save_predictions.mkdir(parents=True, exist_ok=True)
        result: EvalResult = evaluate_model(model, source, panoptic, short, args.limit, args.save_predictions)
        default_json = args.checkpoint.with_name(f"{args.checkpoint.stem}_eval_{args.split}.json")
    else:
        dataset = args.dataset or ("custom" if spec_file(args.data) is not None else None)
        if dataset is None:
            raise PemError(
                "--predictions needs --dataset (cityscapes, ade20k or coco-panoptic) unless --data holds a "
                "dataset.yaml"
            )
        panoptic = (args.task or ("panoptic" if dataset == "coco-panoptic" else "semantic")) == "panoptic"
        source = open_dataset(dataset, args.data, args.split, panoptic)
        result = evaluate_files(args.predictions, source, panoptic, args.limit)
        default_json = args.predictions / f"eval_{args.split}.json"
    if result.images == 0:
        raise PemError(f"no images evaluated in split {args.split}")
    print(result.table())
    out = args.json or default_json
    result.write_json(out)
    print(f"wrote {out}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("evaluate", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
