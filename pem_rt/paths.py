"""Output paths checked before any work starts: a command that would fail to write its result after
minutes of streaming, building or exporting says so at once, in one line naming the flag and the fix."""

from __future__ import annotations

import os
from pathlib import Path

from pem_rt.errors import PemError


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists() or parent == parent.parent:
            return parent
    return Path(".")


def _check_ancestor(path: Path, flag: str) -> None:
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise PemError(f"{flag} {path}: {ancestor} is a file, not a folder; choose another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PemError(f"{flag} {path}: cannot write in {ancestor} (permission denied); choose another path")


def check_output_file(path: str | os.PathLike[str] | None, flag: str, example: str = "out.json") -> None:
    """``path`` can be written as a file (None: nothing to check)."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise PemError(f"{flag} {p} is a folder; name a file, e.g. {flag} {p / example}")
    if p.exists() and not os.access(p, os.W_OK):
        raise PemError(f"{flag} {p} is not writable (permission denied); choose another path")
    _check_ancestor(p, flag)


def check_output_dir(path: str | os.PathLike[str] | None, flag: str) -> None:
    """``path`` is a folder or can be created as one (None: nothing to check)."""
    if path is None:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise PemError(f"{flag} {p} is a file; name a folder")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise PemError(f"{flag} {p}: cannot write in it (permission denied); choose another folder")
        return
    _check_ancestor(p, flag)
