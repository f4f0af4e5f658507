"""The project logger, and third-party noise counted instead of repeated.

    from pem_rt.log import get_logger, library_messages
    log = get_logger("build")                      # "pem_rt.build": one project logger tree
    with library_messages(verbose, "modelopt") as noise:
        logger = trt.logger(verbose, noise)       # TensorRT's messages go through ``noise`` too
        ...                                       # at the end: one summary line per repeated message

Rules (STYLE.md): libraries never print and never touch the root logger or the global warning filters.
:func:`configure` gives the ``pem_rt`` logger one handler of its own (it does not propagate to the
root). :func:`library_messages` routes the named third-party loggers through a :class:`RepeatCounter`
for the duration of a block only, and puts their handlers, level and propagation back afterwards.
The counter passes each distinct message on once, counts its repeats (numbers in a message do not
make it distinct) and ends with one line per repeated message; messages that are harmless on a machine
without an NVIDIA GPU (NVML or the GPU count missing) are dropped there. ``verbose`` passes everything.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

LOGGER_NAME = "pem_rt"
_HANDLER_NAME = "pem_rt-console"

# Said by ModelOpt / TensorRT / ONNX Runtime on every machine without an NVIDIA GPU or driver.
HARMLESS_WITHOUT_GPU = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"failed to get gpu count",
        r"\bnvml\b|libnvidia-ml",
        r"cuda (driver|initiali[sz]ation)|cudaGetDeviceCount|no cuda-capable device",
        r"CUDA_ERROR_NO_DEVICE|CUDA_ERROR_NOT_INITIALIZED",
    )
)


def get_logger(name: str | None = None) -> logging.Logger:
    """``pem_rt`` or ``pem_rt.<name>``."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def configure(verbose: bool = False, stream: TextIO | None = None) -> logging.Logger:
    """Give the project logger one console handler (idempotent): INFO, or DEBUG with ``verbose``."""
    logger = get_logger()
    handler = next((h for h in logger.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    return logger


def has_nvidia_gpu(root: Path = Path("/")) -> bool:
    """An NVIDIA GPU device node exists (a discrete GPU's /dev/nvidia0, or a Jetson's integrated GPU)."""
    dev = root / "dev"
    return any((dev / name).exists() for name in ("nvidia0", "nvhost-ctrl-gpu", "nvgpu"))


def _key(message: str) -> str:
    """What makes two messages the same: numbers, hex ids and quoted names do not count."""
    text = re.sub(r"0x[0-9a-fA-F]+|\d+(\.\d+)?", "#", message.strip())
    return re.sub(r"'[^']*'|\"[^\"]*\"|\[[^\]]*\]", "…", text)[:200]


@dataclass
class RepeatCounter:
    """Passes each distinct third-party message to ``emit`` once and counts the repeats.

    Args:
        emit: where passed-on lines go.
        verbose: pass every message, repeats included (nothing is counted or dropped).
        gpu: whether this machine has an NVIDIA GPU (without one, :data:`HARMLESS_WITHOUT_GPU` is dropped).
    """

    emit: Callable[[str], None]
    verbose: bool = False
    gpu: bool = field(default_factory=has_nvidia_gpu)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    first: dict[tuple[str, str], str] = field(default_factory=dict)
    dropped: int = 0

    def __call__(self, source: str, level: str, message: str) -> None:
        line = f"{source} {level}: {message.strip()}"
        if self.verbose:
            self.emit(line)
            return
        if not self.gpu and any(p.search(message) for p in HARMLESS_WITHOUT_GPU):
            self.dropped += 1
            return
        key = (source, _key(message))
        self.counts[key] += 1
        if self.counts[key] == 1:
            self.first[key] = line
            self.emit(line)

    def summary(self) -> list[str]:
        """One line per message that came more than once."""
        lines = []
        for key, n in self.counts.items():
            if n > 1:
                head, text = self.first[key].split(": ", 1)
                short = text if len(text) <= 72 else text[:69] + "..."
                lines.append(f"{head}: '{short}' {n} times (shown once; --verbose shows each)")
        return lines


class _ToCounter(logging.Handler):
    def __init__(self, counter: RepeatCounter, source: str) -> None:
        super().__init__(logging.DEBUG)
        self.counter, self.source = counter, source

    def emit(self, record: logging.LogRecord) -> None:
        self.counter(self.source, record.levelname, record.getMessage())


@contextlib.contextmanager
def library_messages(
    verbose: bool, *loggers: str, emit: Callable[[str], None] | None = None
) -> Iterator[RepeatCounter]:
    """For the block, send the named third-party Python loggers' records (WARNING and up, all with
    ``verbose``) through one :class:`RepeatCounter`; then restore them and emit the summary lines."""
    out = emit or (lambda line: print(line, file=sys.stderr, flush=True))
    counter = RepeatCounter(out, verbose)
    saved = []
    for name in loggers:
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.level, logger.propagate))
        logger.handlers = [_ToCounter(counter, name.split(".")[0])]
        logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
        logger.propagate = False
    try:
        yield counter
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers, logger.level, logger.propagate = handlers, level, propagate
        for line in counter.summary():
            out(line)
