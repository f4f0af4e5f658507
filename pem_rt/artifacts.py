"""Where artefacts live: ``runs/`` by default, ``PEM_RUNS`` overrides.

Layout: ``runs/<run>/{last,best}.pt`` (training) -> ``runs/<run>/<preset>_<task>_<H>x<W>.onnx`` (export)
-> ``<same stem>.trt.onnx`` (surgery) -> ``<same stem>.<precision>.<target>.<trt-version>.engine``.
Which of them a command takes by default is decided by lineage (pem_rt/lineage.py), never by mtime.
"""

from __future__ import annotations

import os
from pathlib import Path


def runs_root() -> Path:
    return Path(os.environ.get("PEM_RUNS", "runs"))
