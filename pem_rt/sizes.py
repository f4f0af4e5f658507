"""Frame and model sizes as people write them on the command line: ``HxW`` (height x width)."""

from __future__ import annotations

import argparse

from pem_rt.errors import PemError


def parse_size(text: str, what: str = "size", minimum: int = 1) -> tuple[int, int]:
    """'512x1024' -> (512, 1024). A malformed or too small size is a one-line PemError naming ``what``."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise PemError(f"{what}: '{text}' is not HxW (height x width), e.g. 512x1024") from None
    if h < minimum or w < minimum:
        need = "positive" if minimum == 1 else f"at least {minimum}x{minimum}"
        raise PemError(f"{what}: {h}x{w} is too small (height and width must be {need})")
    return h, w


def size_arg(text: str) -> tuple[int, int]:
    """``type=`` for an argparse HxW flag: argparse turns the error into its one-line usage message."""
    try:
        return parse_size(text)
    except PemError as e:
        raise argparse.ArgumentTypeError(str(e).split(": ", 1)[1]) from None
