"""`python training/make_synthetic.py --out DIR --train 64 --val 16 --size 256x512`: a synthetic
Cityscapes-format dataset (images, labelIds, instanceIds) of simple street scenes; see
:mod:`training.data.synthetic`. Train on it with ``--dataset cityscapes --data DIR``.

``--format folders|coco|coco-panoptic`` writes the same scenes as a dataset with its own classes
(``--classes drivable5`` or ``street4``) and a dataset.yaml, in that layout
(:mod:`training.data.synthetic_custom`); train on it with ``--preset tiny --data DIR``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pem_rt.command import run_command
from pem_rt.errors import PemError
from pem_rt.sizes import size_arg
from training.data.synthetic import CLASSES_USED, write_dataset
from training.data.synthetic_custom import CLASS_SETS, FORMATS, write_custom_dataset


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pem synthetic", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--out", type=Path, required=True, help="output folder (the Cityscapes root)")
    p.add_argument("--train", type=int, default=64, help="training images (default 64)")
    p.add_argument("--val", type=int, default=16, help="validation images (default 16)")
    p.add_argument("--size", type=size_arg, default=(256, 512), help="image HxW (default 256x512)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--format",
        choices=("cityscapes", *FORMATS),
        default="cityscapes",
        help="cityscapes (default), or a dataset.yaml layout with its own classes",
    )
    p.add_argument(
        "--classes",
        choices=tuple(CLASS_SETS),
        default="drivable5",
        help="class set of the dataset.yaml layouts: drivable5 (5 classes) or street4 (2 stuff + 2 things)",
    )
    return p


def _run(args: argparse.Namespace) -> None:
    if args.train < 0 or args.val < 0:
        raise PemError("--train and --val must be >= 0")
    if min(args.size) < 32:
        raise PemError(f"--size {args.size[0]}x{args.size[1]} is too small; use at least 32x32")
    t = time.perf_counter()
    if args.format == "cityscapes":
        counts = write_dataset(args.out, args.train, args.val, args.size, args.seed)
        names = CLASSES_USED
    else:
        counts = write_custom_dataset(
            args.out, args.format, args.train, args.val, args.size, args.seed, args.classes
        )
        names = tuple(CLASS_SETS[args.classes]["names"])
    print(
        f"wrote {counts['train']} train + {counts['val']} val scenes of {args.size[0]}x{args.size[1]} to "
        f"{args.out} in {time.perf_counter() - t:.1f} s ({args.format}; classes: {', '.join(names)})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("synthetic", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
