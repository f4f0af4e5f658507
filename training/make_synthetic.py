"""`python training/make_synthetic.py --out DIR --train 64 --val 16 --size 256x512`: a synthetic
Cityscapes-format dataset (images, labelIds, instanceIds) of simple street scenes; see
:mod:`training.data.synthetic`. Train on it with ``--dataset cityscapes --data DIR``."""

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pem synthetic", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--out", type=Path, required=True, help="output folder (the Cityscapes root)")
    p.add_argument("--train", type=int, default=64, help="training images (default 64)")
    p.add_argument("--val", type=int, default=16, help="validation images (default 16)")
    p.add_argument("--size", type=size_arg, default=(256, 512), help="image HxW (default 256x512)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return p


def _run(args: argparse.Namespace) -> None:
    if args.train < 0 or args.val < 0:
        raise PemError("--train and --val must be >= 0")
    if min(args.size) < 32:
        raise PemError(f"--size {args.size[0]}x{args.size[1]} is too small; use at least 32x32")
    t = time.perf_counter()
    counts = write_dataset(args.out, args.train, args.val, args.size, args.seed)
    print(
        f"wrote {counts['train']} train + {counts['val']} val scenes of {args.size[0]}x{args.size[1]} to "
        f"{args.out} in {time.perf_counter() - t:.1f} s (classes: {', '.join(CLASSES_USED)})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("synthetic", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
