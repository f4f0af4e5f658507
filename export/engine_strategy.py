"""What each TensorRT flavour can build: the plugin strategy per flavour and the portable-engine flags.

- ``--dcn auto|plugin|native``: ``auto`` keeps ONNX DeformConv on classic TensorRT >= 10.1 (its parser
  imports it; our kernel measured 0.37-0.45x torchvision on an H200) and uses our plugin on TensorRT-RTX
  (whose parser has no DeformConv) and on older TensorRT.
- ``--prototype-selection plugin|graph``: our fused kernel, or the standard ONNX subgraph.
- With no plugin in the graph: ``--version-compatible`` (the engine runs on later TensorRT versions),
  ``--hardware-compat ampere+`` (one engine for every Ampere-or-newer GPU), ``--dla-core N`` (Jetson Orin's
  DLA, FP16/INT8, layers it cannot run fall back to the GPU). Classic TensorRT only: TensorRT-RTX builds
  for the GPUs named with ``--target`` instead and has neither DLA nor version-compatible engines.

Each request a flavour cannot do is refused in one line before any conversion or build starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from export.surgery import PluginStrategy, SelectionChoice
from pem_rt.errors import PemError
from pem_rt.trt import TensorRT

DcnRequest = Literal["auto", "plugin", "native"]
DCN_REQUESTS: tuple[DcnRequest, ...] = ("auto", "plugin", "native")
HARDWARE_COMPAT = ("none", "ampere+")
NATIVE_DEFORM_CONV_SINCE = (10, 1)  # classic TensorRT's ONNX parser imports DeformConv from 10.1 on


@dataclass(frozen=True)
class Portability:
    """Engine properties that need a graph without plugins (classic TensorRT)."""

    version_compatible: bool = False
    hardware_compat: str = "none"  # none | ampere+
    dla_core: int | None = None

    def requested(self) -> list[str]:
        """The flags asked for, as the user typed them."""
        flags = ["--version-compatible"] if self.version_compatible else []
        flags += [f"--hardware-compat {self.hardware_compat}"] if self.hardware_compat != "none" else []
        return flags + ([f"--dla-core {self.dla_core}"] if self.dla_core is not None else [])


def _version(trt: TensorRT) -> tuple[int, ...]:
    return tuple(int(p) for p in trt.version.split(".")[:2] if p.isdigit())


def resolve_strategy(trt: TensorRT, dcn: DcnRequest, selection: SelectionChoice) -> PluginStrategy:
    """This flavour's plugin strategy; ``--dcn native`` is refused where the parser has no DeformConv."""
    native_ok = trt.flavour == "tensorrt" and _version(trt) >= NATIVE_DEFORM_CONV_SINCE
    if dcn == "native" and not native_ok:
        parser = "TensorRT-RTX's ONNX parser" if trt.flavour == "tensorrt_rtx" else f"TensorRT {trt.version}"
        raise PemError(f"--dcn native: {parser} has no DeformConv importer; use --dcn plugin (or auto)")
    if dcn == "auto":
        return PluginStrategy("native" if native_ok else "plugin", selection)
    return PluginStrategy(dcn, selection)


def check_request(trt: TensorRT, strategy: PluginStrategy, portability: Portability, precision: str) -> None:
    """Refuse, in one line, what this flavour or graph cannot build."""
    flags = portability.requested()
    if not flags:
        return
    if trt.flavour == "tensorrt_rtx":
        why = {
            "--version-compatible": "TensorRT-RTX builds no version-compatible engines",
            "--hardware-compat": "TensorRT-RTX has no hardware-compatibility levels; name GPUs with --target",
            "--dla-core": "TensorRT-RTX has no DLA: build on the Jetson with classic TensorRT",
        }[flags[0].split()[0]]
        raise PemError(f"{flags[0]}: {why}")
    if not strategy.plugin_free:
        raise PemError(
            f"{flags[0]} needs an engine without plugins: add --dcn native --prototype-selection graph"
        )
    if portability.dla_core is not None and precision == "fp32":
        raise PemError(f"--dla-core {portability.dla_core}: the DLA runs FP16 or INT8; use --fp16 or --int8")
    if portability.hardware_compat not in HARDWARE_COMPAT:
        raise PemError(
            f"--hardware-compat {portability.hardware_compat}: choose {' or '.join(HARDWARE_COMPAT)}"
        )


def apply_portability(trt: TensorRT, builder: Any, config: Any, portability: Portability) -> None:
    """Set the builder config for the requested portable-engine properties (classic TensorRT)."""
    mod = trt.module
    if portability.version_compatible:
        config.set_flag(mod.BuilderFlag.VERSION_COMPATIBLE)
    if portability.hardware_compat == "ampere+":
        config.hardware_compatibility_level = mod.HardwareCompatibilityLevel.AMPERE_PLUS
    if portability.dla_core is not None:
        cores = int(builder.num_DLA_cores)
        if not 0 <= portability.dla_core < cores:
            have = f"DLA cores 0-{cores - 1}" if cores else "no DLA"
            raise PemError(f"--dla-core {portability.dla_core}: this device has {have}")
        config.default_device_type = mod.DeviceType.DLA
        config.DLA_core = portability.dla_core
        config.set_flag(mod.BuilderFlag.GPU_FALLBACK)
