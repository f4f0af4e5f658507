"""A deterministic test hook: ``PEM_KILL_AT=PATTERN[#N]`` makes the process SIGKILL itself at a named point.

Writers call :func:`reach` at the moments a crash matters (before and after each atomic rename, between an
engine's sidecar and the engine itself); the kill -9 tests name one point (an fnmatch pattern over point
names such as ``before-rename:*.engine``; ``#N``: its N-th occurrence) instead of sleeping and hoping.
Unset (always, outside the tests) it costs one environment lookup.
"""

from __future__ import annotations

import fnmatch
import os
import signal

ENV = "PEM_KILL_AT"
_seen: dict[str, int] = {}


def reach(point: str) -> None:
    """SIGKILL this process if ``PEM_KILL_AT`` names ``point`` (and this is the occurrence it counts)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    pattern, _, nth = wanted.partition("#")
    if not fnmatch.fnmatchcase(point, pattern):
        return
    _seen[pattern] = _seen.get(pattern, 0) + 1
    if _seen[pattern] == (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
