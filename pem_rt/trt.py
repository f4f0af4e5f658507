"""One small adapter over the two TensorRT flavours we support.

- ``tensorrt`` (classic TensorRT 10/11: Jetson, datacenter GPUs; needs the GPU to build),
- ``tensorrt_rtx`` (TensorRT for RTX from PyPI: RTX GPUs; builds ahead of time on a CPU-only machine
  for named compute capabilities SM75/80/86/89/120/121).

Both share the strongly typed network API we use (FP16 by casting the ONNX, INT8 by explicit Q/DQ);
this module only hides the import, the version, the target list and the flavour-specific knobs.
Torch-free: the runtime imports it too.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from pem_rt.errors import PemError

Flavour = Literal["tensorrt", "tensorrt_rtx"]
FLAVOURS: tuple[Flavour, ...] = ("tensorrt", "tensorrt_rtx")
RTX_TARGETS = ("sm75", "sm80", "sm86", "sm89", "sm120", "sm121")


@dataclass(frozen=True)
class TensorRT:
    """An imported TensorRT flavour: ``module`` is ``tensorrt`` or ``tensorrt_rtx``."""

    flavour: Flavour
    module: ModuleType

    @property
    def version(self) -> str:
        return str(self.module.__version__)

    @property
    def name(self) -> str:
        """How messages name it: TensorRT or TensorRT-RTX."""
        return "TensorRT-RTX" if self.flavour == "tensorrt_rtx" else "TensorRT"

    @property
    def ahead_of_time(self) -> bool:
        """True when engines can be built without a GPU for named compute capabilities."""
        return self.flavour == "tensorrt_rtx"

    def logger(self, verbose: bool = False, messages: Callable[[str, str, str], None] | None = None) -> Any:
        """A TensorRT logger: WARNING and up (everything with ``verbose``), printed by TensorRT, or passed
        to ``messages(source, level, text)`` (a :class:`pem_rt.log.RepeatCounter`) when given."""
        trt = self.module
        if messages is None:
            return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
        return _counting_logger(trt, messages, verbose)

    def set_targets(self, config: Any, targets: list[str]) -> None:
        """Name the GPUs to build for (TensorRT-RTX); classic TensorRT builds for the GPU it runs on."""
        if not targets:
            return
        if not self.ahead_of_time:
            raise PemError(
                f"--target {','.join(targets)} needs TensorRT-RTX; classic TensorRT builds for the GPU "
                "in this machine: drop --target or use --flavour tensorrt_rtx"
            )
        caps = self.module.ComputeCapability
        config.num_compute_capabilities = len(targets)
        for i, target in enumerate(targets):
            config.set_compute_capability(getattr(caps, target.upper()), i)


def _counting_logger(trt: ModuleType, messages: Callable[[str, str, str], None], verbose: bool) -> Any:
    threshold = int(trt.ILogger.Severity.VERBOSE if verbose else trt.ILogger.Severity.WARNING)
    name = "TensorRT-RTX" if trt.__name__.startswith("tensorrt_rtx") else "TensorRT"

    class CountingLogger(trt.ILogger):  # type: ignore[name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= threshold:
                messages(name, str(severity).rsplit(".", 1)[-1], msg)

    return CountingLogger()


def parse_targets(text: str | None) -> list[str]:
    """'sm86,sm89' -> ['sm86', 'sm89'], validated against what TensorRT-RTX can target."""
    if not text:
        return []
    targets = [t.strip().lower() for t in text.split(",") if t.strip()]
    unknown = [t for t in targets if t not in RTX_TARGETS]
    if unknown:
        raise PemError(
            f"unknown --target {','.join(unknown)}; TensorRT-RTX targets are {', '.join(RTX_TARGETS)} "
            "(H100 = sm90 and Jetson Orin = sm87 use classic TensorRT on the device: omit --target there)"
        )
    return targets


def load_tensorrt(flavour: str = "auto") -> TensorRT:
    """Import the requested flavour; ``auto`` prefers classic TensorRT, then TensorRT-RTX."""
    wanted: tuple[str, ...] = FLAVOURS if flavour == "auto" else (flavour,)
    if flavour != "auto" and flavour not in FLAVOURS:
        raise PemError(f"unknown --flavour {flavour}; choose auto, tensorrt or tensorrt_rtx")
    errors = []
    for name in wanted:
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            errors.append(f"{name}: {e}")
            continue
        return TensorRT(name, module)  # type: ignore[arg-type]
    raise PemError(
        f"no TensorRT found ({'; '.join(errors)}); install TensorRT-RTX with "
        "`pip install tensorrt-rtx-cu13` (or use the JetPack/NGC TensorRT on Jetson and datacenter GPUs)"
    )
