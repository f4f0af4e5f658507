"""`python -m tests.fuzz.run TARGET [libFuzzer flags] [CORPUS]`: fuzz one parser with atheris.

Seeds (valid files) are written into the corpus folder first (default build/fuzz/<target>/). Only the
project's PemError may come out of a target; anything else is a crash, which libFuzzer reports (with the
input saved as crash-*) and exits non-zero. `make fuzz` runs every target for 10^6 executions.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import atheris

from tests.fuzz.targets import INSTRUMENT, TARGETS, run_one, write_seeds


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.run {{{','.join(TARGETS)}}} [libFuzzer flags] [CORPUS]")
    name, rest = sys.argv[1], sys.argv[2:]
    corpus = [a for a in rest if not a.startswith("-")]
    if not corpus:
        corpus = [str(Path("build/fuzz") / name)]
        rest.append(corpus[0])
    with atheris.instrument_imports(include=INSTRUMENT[name]):  # before anything imports them
        for module in INSTRUMENT[name]:
            importlib.import_module(module)
    write_seeds(name, Path(corpus[0]))
    atheris.Setup([sys.argv[0], *rest], lambda data: run_one(name, data))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
