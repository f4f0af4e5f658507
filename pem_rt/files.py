"""Atomic file writes: a checkpoint, engine or cache is either the old file or the complete new one.

The new file gets the mode a plain ``open()`` would give it (0666 less the umask), not mkstemp's 0600, so
other users and containers can read artefacts. Temporary files are named ``.<name>.<pid>-<random>.tmp``;
a writer removes the ones that processes which no longer run (killed ones) left beside its target.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from pem_rt.killpoints import reach


def umask() -> int:
    """The process umask, read without changing it where the OS says it (Linux), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temporary files of ``target`` that dead processes left behind; returns them."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?:(\d+)-)?[A-Za-z0-9_]{{8}}\.tmp$")
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    for entry in target.parent.iterdir():
        m = pattern.match(entry.name)
        if m is None:
            continue
        if m.group(1) is not None and (int(m.group(1)) == os.getpid() or process_alive(int(m.group(1)))):
            continue  # a writer that still runs (this process or another)
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~umask())
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        reach(f"before-rename:{target.name}")
        os.replace(tmp, target)
        reach(f"after-rename:{target.name}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(f)`` on a temporary binary file and atomically move it onto ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))
