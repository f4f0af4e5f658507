"""The defaults chain: each command finds the previous stage's newest artefact under the runs folder.

Layout (``runs/`` by default, ``PEM_RUNS`` overrides):
``runs/<run>/{last,best}.pt`` (training) -> ``runs/<run>/<preset>_<task>_<H>x<W>.onnx`` (export)
-> ``<same stem>.trt.onnx`` (surgery) -> ``<same stem>.<precision>.<target>.<trt-version>.engine``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pem_rt.errors import PemError


def runs_root() -> Path:
    return Path(os.environ.get("PEM_RUNS", "runs"))


def newest(patterns: list[str], keep: Callable[[Path], bool] = lambda p: True) -> Path | None:
    """Most recently modified file under the runs root matching any glob pattern (recursive)."""
    root = runs_root()
    if not root.is_dir():
        return None
    found = [p for pat in patterns for p in root.rglob(pat) if p.is_file() and keep(p)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def require_newest(
    what: str, patterns: list[str], flag: str, command: str, keep: Callable[[Path], bool] = lambda p: True
) -> Path:
    """Like :func:`newest`, but a missing artefact is a one-line error naming the command to run."""
    path = newest(patterns, keep)
    if path is None:
        raise PemError(f"no {what} found under {runs_root()}/; run `{command}` first or pass {flag}")
    print(f"using {what} {path} (newest under {runs_root()}/; pass {flag} to choose another)")
    return path
