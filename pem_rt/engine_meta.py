"""The JSON sidecar written beside every engine, and the checks the runtime makes before using one.

``<name>.<precision>.<target>.<trt-version>.engine`` + ``<same>.engine.json``:
model metadata (:class:`pem_rt.model_meta.ModelMeta`), precision, TensorRT flavour and version, target
compute capabilities, the plugin library's SHA-256 and CUDA runtime version (the driver it needs), which
subgraphs are plugins (``dcn``, ``prototype_selection``), the portable-engine properties, the engine's I/O,
the post-processing mode of the graph it was built from ("exact" or "fast"; sidecars written before the
mode existed read as exact), and the command that built it; its lineage (role ``engine``, the SHA-256 of
the TensorRT graph it was built from, ``onnx_sha256`` the reference graph's) and the engine's own size and
SHA-256, so an engine and a sidecar that do not belong together (an interrupted build, a copied file) are
refused with the command that rebuilds them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pem_rt.errors import PemError
from pem_rt.files import atomic_write_text
from pem_rt.model_meta import ModelMeta, check_postprocess

SIDECAR_FORMAT = "pem-rt-engine/1"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy dtype name: uint8, int32, float32, float16
    shape: tuple[int, ...]  # -1 for dynamic dimensions


@dataclass(frozen=True)
class EngineSidecar:
    model: ModelMeta
    precision: str  # fp32 | fp16 | int8
    flavour: str  # tensorrt | tensorrt_rtx
    trt_version: str
    targets: tuple[str, ...]  # e.g. ("sm86", "sm89"); empty = the GPU it was built on
    plugin_sha256: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    onnx_sha256: str
    build_command: str
    layers: tuple[dict[str, str], ...] = ()  # name, type, output dtypes of each network layer
    batch_profile: tuple[int, int, int] | None = None  # min, opt, max batch of a dynamic-batch engine
    plugin_cuda_runtime: int = 0  # CUDART_VERSION of the plugin library (13000); 0: no plugins
    dcn: str = "plugin"  # plugin (ModulatedDeformConv2d) | native (ONNX DeformConv)
    prototype_selection: str = "plugin"  # plugin (PrototypeSelection) | graph (standard ONNX ops)
    version_compatible: bool = False
    hardware_compat: str = "none"  # none | ampere+
    dla_core: int | None = None
    postprocess: str = "exact"  # the graph's post-processing (pem_rt.model_meta.POSTPROCESS_MODES)
    engine_size: int = 0  # bytes of the engine file (0: a sidecar written before this was recorded)
    engine_sha256: str = ""
    role: str = "engine"
    parent_sha256: str = ""  # the TensorRT graph (with plugin nodes) the engine was built from
    int8_excluded_groups: tuple[str, ...] = ()  # model parts --max-miou-drop kept out of INT8
    int8_budget: dict[str, float] | None = None  # its max_miou_drop and the drop measured on ONNX Runtime
    format: str = SIDECAR_FORMAT

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_json()
        return d


def sidecar_path(engine: str | os.PathLike[str]) -> Path:
    return Path(f"{engine}.json")


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_sidecar(engine: str | os.PathLike[str], sidecar: EngineSidecar) -> Path:
    return atomic_write_text(sidecar_path(engine), json.dumps(sidecar.to_json(), indent=2) + "\n")


def read_sidecar(engine: str | os.PathLike[str]) -> EngineSidecar:
    path = sidecar_path(engine)
    if not path.is_file():
        raise PemError(f"{engine} has no sidecar {path.name}; rebuild it with `pem build-engine`")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise PemError(
            f"{path} is not a readable engine sidecar ({e}); rebuild with `pem build-engine`"
        ) from None
    return parse_sidecar(text, str(path))


def parse_sidecar(text: str, path: str) -> EngineSidecar:
    """The sidecar in ``text`` (read from ``path``); a PemError naming it when it is not a valid one."""
    try:
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        if d.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"format {d.get('format')!r}")
        model = ModelMeta.from_json(d["model"], str(path))
        postprocess = check_postprocess(d.get("postprocess", "exact"))
        if postprocess != model.postprocess:
            raise ValueError(f"postprocess {postprocess!r} but its model metadata says {model.postprocess!r}")
        return EngineSidecar(
            model=model,
            precision=str(d["precision"]),
            flavour=str(d["flavour"]),
            trt_version=str(d["trt_version"]),
            targets=tuple(d["targets"]),
            plugin_sha256=str(d["plugin_sha256"]),
            inputs=tuple(TensorInfo(t["name"], t["dtype"], tuple(t["shape"])) for t in d["inputs"]),
            outputs=tuple(TensorInfo(t["name"], t["dtype"], tuple(t["shape"])) for t in d["outputs"]),
            onnx_sha256=str(d["onnx_sha256"]),
            build_command=str(d["build_command"]),
            layers=tuple(dict(layer) for layer in d.get("layers", [])),
            batch_profile=_profile(d.get("batch_profile")),
            plugin_cuda_runtime=int(d.get("plugin_cuda_runtime", 0)),
            dcn=str(d.get("dcn", "plugin")),
            prototype_selection=str(d.get("prototype_selection", "plugin")),
            version_compatible=bool(d.get("version_compatible", False)),
            hardware_compat=str(d.get("hardware_compat", "none")),
            dla_core=None if d.get("dla_core") is None else int(d["dla_core"]),
            postprocess=postprocess,
            engine_size=int(d.get("engine_size", 0)),
            engine_sha256=str(d.get("engine_sha256", "")),
            role=str(d.get("role", "engine")),
            parent_sha256=str(d.get("parent_sha256", "")),
            int8_excluded_groups=tuple(str(g) for g in d.get("int8_excluded_groups", [])),
            int8_budget=_budget(d.get("int8_budget")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise PemError(
            f"{path} is not a valid engine sidecar ({e}); rebuild with `pem build-engine`"
        ) from None


def _budget(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("int8_budget is not an object")
    return {str(k): float(v) for k, v in value.items()}


def verify_engine(engine: str | os.PathLike[str], sidecar: EngineSidecar) -> bool:
    """Refuse an engine that is not the one its sidecar describes (size, SHA-256), naming the rebuild
    command. Returns False for a sidecar written before engines were hashed (nothing to check)."""
    if not sidecar.engine_sha256:
        return False
    rebuild = sidecar.build_command or "pem build-engine"
    size = os.path.getsize(engine)
    if size != sidecar.engine_size or sha256_file(engine) != sidecar.engine_sha256:
        what = (
            f"{size} bytes, the sidecar says {sidecar.engine_size}"
            if size != sidecar.engine_size
            else "SHA-256"
        )
        raise PemError(
            f"engine {engine} is not the one its sidecar {sidecar_path(engine).name} describes ({what}: "
            f"an interrupted build or a replaced file); rebuild: {rebuild}"
        )
    return True


def _profile(value: Any) -> tuple[int, int, int] | None:
    if value is None:
        return None
    lo, opt, hi = (int(v) for v in value)
    return lo, opt, hi


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def _runs_version_compatible(sidecar: EngineSidecar, trt_version: str) -> bool:
    """A version-compatible engine runs on the same major release at its version or later."""
    built, have = _version_tuple(sidecar.trt_version), _version_tuple(trt_version)
    return sidecar.version_compatible and built[:1] == have[:1] and have >= built


def check_compatible(
    engine: str | os.PathLike[str],
    sidecar: EngineSidecar,
    flavour: str,
    trt_version: str,
    compute_capability: str | None,
    plugin_sha256: str | None,
) -> None:
    """Refuse an engine this machine cannot run, with the command that rebuilds it."""
    rebuild = sidecar.build_command or "pem build-engine"
    problems = []
    if sidecar.flavour != flavour:
        problems.append(f"built with {sidecar.flavour}, this machine has {flavour}")
    if sidecar.trt_version != trt_version and not _runs_version_compatible(sidecar, trt_version):
        problems.append(f"built with TensorRT {sidecar.trt_version}, this machine has {trt_version}")
    if compute_capability and sidecar.targets and compute_capability not in sidecar.targets:
        problems.append(f"built for {','.join(sidecar.targets)}, this GPU is {compute_capability}")
    if plugin_sha256 and sidecar.plugin_sha256 and plugin_sha256 != sidecar.plugin_sha256:
        problems.append("built with another plugin library than the one loaded")
    if problems:
        raise PemError(
            f"engine {engine} does not fit this machine ({'; '.join(problems)}); rebuild: {rebuild}"
        )
