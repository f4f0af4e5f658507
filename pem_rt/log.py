"""The project logger, and third-party noise counted instead of repeated.

    from pem_rt.log import get_logger, library_messages
    log = get_logger("build")                      # "pem_rt.build": one project logger tree
    with library_messages(verbose, "modelopt") as noise:
        logger = trt.logger(verbose, noise)       # TensorRT's messages go through ``noise`` too
        ...                                       # at the end: one summary line per repeated message

Rules (STYLE.md): libraries never print and never touch the root logger or the global warning filters.
:func:`configure` gives the ``pem_rt`` logger one handler of its own (it does not propagate to the
root). :func:`library_messages` routes the named third-party loggers through a :class:`RepeatCounter`
for the duration of a block only, and puts their handlers, level and propagation back afterwards (the
root logger too, when a library logs through it: nothing of it outlives the block).
The counter passes each distinct message on once, counts its repeats (numbers in a message do not
make it distinct) and ends with one line per repeated message; messages that are harmless on a machine
without an NVIDIA GPU (NVML or the GPU count missing) are dropped there. ``verbose`` passes everything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
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


class _Console(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` / ``sys.stderr`` is when a record comes (tests swap them)."""

    def __init__(self, which: str) -> None:
        super().__init__()
        self.which = which

    @property
    def stream(self) -> TextIO:
        return getattr(sys, self.which)

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ sets it; the property decides
        pass


def configure(verbose: bool = False, stderr: bool = False) -> logging.Logger:
    """Give the project logger one console handler (idempotent): INFO, or DEBUG with ``verbose``, on
    stdout (``stderr``: on stderr, when stdout carries data such as ``--results -``)."""
    logger = get_logger()
    handler = next((h for h in logger.handlers if h.get_name() == _HANDLER_NAME), None)
    if not isinstance(handler, _Console):
        handler = _Console("stdout")
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    handler.which = "stderr" if stderr else "stdout"
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    return logger


def has_nvidia_gpu(root: Path = Path("/")) -> bool:
    """An NVIDIA GPU device node exists (a discrete GPU's /dev/nvidia0, or a Jetson's integrated GPU)."""
    dev = root / "dev"
    return any((dev / name).exists() for name in ("nvidia0", "nvhost-ctrl-gpu", "nvgpu"))


def _key(message: str) -> str:
    """What makes two messages the same: names with digits or underscores, numbers, quoted text and
    bracketed text do not count ("in op node_clamp_3_min ..." and "in op node_clamp_min ..." are one)."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\[[^\]]*\]|\([^)]*\)", "…", message.strip())
    return re.sub(r"\b\w*[\d_]\w*\b", "#", text)[:200]


@dataclass
class RepeatCounter:
    """Counts third-party messages: errors are passed to ``emit`` at once, everything else once per
    distinct message in :meth:`summary` with how often it came.

    Args:
        emit: where lines go.
        verbose: pass every message as it comes (nothing is counted or dropped).
        gpu: whether this machine has an NVIDIA GPU (without one, :data:`HARMLESS_WITHOUT_GPU` is dropped).
    """

    emit: Callable[[str], None]
    verbose: bool = False
    gpu: bool = field(default_factory=has_nvidia_gpu)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    first: dict[tuple[str, str], str] = field(default_factory=dict)
    dropped: int = 0
    shown: set[tuple[str, str]] = field(default_factory=set)

    def __call__(self, source: str, level: str, message: str) -> None:
        text = message.strip()
        if not text:
            return
        line = f"{source} {level.lower()}: {text}"
        if self.verbose:
            self.emit(line)
            return
        if not self.gpu and any(p.search(text) for p in HARMLESS_WITHOUT_GPU):
            self.dropped += 1
            return
        key = (source, _key(text))
        self.counts[key] += 1
        if self.counts[key] == 1:
            self.first[key] = line
            if level.upper() in ("ERROR", "INTERNAL_ERROR", "CRITICAL"):
                self.shown.add(key)
                self.emit(line)

    def summary(self) -> list[str]:
        """One line per distinct message not shown yet: the first of its kind and how often it came."""
        lines = []
        for key, n in self.counts.items():
            if key in self.shown and n == 1:
                continue
            line = self.first[key]
            shown = line if len(line) <= 150 else line[:147] + "..."
            lines.append(f"{shown} [{n}x]" if n > 1 else shown)
        self.counts.clear()
        return lines


class _ToCounter(logging.Handler):
    def __init__(self, counter: RepeatCounter, source: str) -> None:
        super().__init__(logging.DEBUG if counter.verbose else logging.WARNING)
        self.counter, self.source = counter, source

    def emit(self, record: logging.LogRecord) -> None:
        self.counter(self.source, record.levelname, record.getMessage())


_active: list[RepeatCounter] = []  # the counter of the outermost library_messages block, if any


def _family(prefix: str) -> list[logging.Logger]:
    """``prefix`` and every logger created under it so far (``"root"``: the root logger alone, for
    libraries that log through ``logging.warning()``; it gets its handlers back after the block)."""
    if prefix == "root":
        return [logging.getLogger()]
    names = [n for n in list(logging.root.manager.loggerDict) if n == prefix or n.startswith(prefix + ".")]
    return [logging.getLogger(n) for n in sorted({prefix, *names})]


@contextlib.contextmanager
def library_messages(
    verbose: bool, *prefixes: str, emit: Callable[[str], None] | None = None
) -> Iterator[RepeatCounter]:
    """For the block, send the records of the named third-party logger trees (``"modelopt"``: every
    ``modelopt.*`` logger; ``"root"``: what libraries log through the root logger) through one
    :class:`RepeatCounter`; then restore every logger touched and emit the summary. Inside an outer block
    the outer counter is used (and summarises at its end)."""
    outer = _active[0] if _active else None
    out = emit or (lambda line: print(line, file=sys.stderr, flush=True))
    counter = outer or RepeatCounter(out, verbose)
    saved = []
    for prefix in prefixes:
        family = _family(prefix)
        for logger in family:
            saved.append((logger, list(logger.handlers), logger.level, logger.propagate))
            top = logger is family[0]
            logger.handlers = [_ToCounter(counter, prefix)] if top else []
            logger.setLevel(logging.DEBUG if counter.verbose else logging.WARNING)
            logger.propagate = not top
    if outer is None:
        _active.append(counter)
    try:
        yield counter
    finally:
        for logger, handlers, level, propagate in reversed(saved):
            logger.handlers, logger.level, logger.propagate = handlers, level, propagate
        if outer is None:
            _active.clear()
            for line in counter.summary():
                counter.emit(line)


@contextlib.contextmanager
def native_output(counter: RepeatCounter | None, source: str) -> Iterator[None]:
    """For the block, what native libraries print on the process's stdout (fd 1: TensorRT's builder
    prints some warnings itself, bypassing its logger) goes through ``counter`` line by line. Python's own
    prints must not happen inside the block; stderr (progress bars) is left alone."""
    if counter is None or counter.verbose:
        yield
        return
    sys.stdout.flush()
    read_end, write_end = os.pipe()
    saved = os.dup(1)
    os.dup2(write_end, 1)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "r", errors="replace") as pipe:
            for line in pipe:
                level = "warning" if re.match(r"\s*(WARNING|\[W\])", line) else "message"
                text = re.sub(r"^\s*(WARNING:|\[W\])\s*", "", line)
                counter(source, level, text)

    reader = threading.Thread(target=pump, name="native-output", daemon=True)
    reader.start()
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)  # closes the pipe's last write end: the reader sees EOF
        os.close(saved)
        reader.join(10)
