"""How every PEM-RT command runs: parse, do the work, end with one PASSED/FAILED line.

A :class:`~pem_rt.errors.PemError` becomes ``error: <message>`` on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pem_rt.errors import PemError


def run_command(
    name: str,
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
    stdout_is_data: Callable[[argparse.Namespace], bool] = lambda _: False,
) -> int:
    """Parse ``argv``, call ``body(args)`` and return the process exit code.

    ``body`` returns None or 0 for success, another integer for a failure it already explained. Where
    ``stdout_is_data(args)`` (the command writes its results there), the verdict line goes to stderr.
    """
    args = parser.parse_args(argv)
    try:
        code = body(args) or 0
    except PemError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    verdict = sys.stderr if stdout_is_data(args) else sys.stdout
    print(f"{name}: {'PASSED' if code == 0 else 'FAILED'}", file=verdict, flush=True)
    return code
