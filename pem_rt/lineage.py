"""What each artefact is and what it was made from, and how commands pick their default input by it.

Every artefact records its role and the SHA-256 of its parent: ONNX metadata (``pem.role``,
``pem.parent_sha256``, ``pem.reference_sha256``) for graphs, the sidecar for engines, the header for
calibration caches. Defaults are chosen by role and lineage, never by modification time: build-engine,
calibrate and surgery take reference graphs only; the stream takes an engine made from the current
reference graph, else that graph; comparison scratch is never a candidate. Each pick is said in one line,
and an ambiguous one is a one-line error listing the candidates. Graphs written before lineage existed
have no ``pem.role``: their role is taken from their name (and said so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pem_rt.artifacts import runs_root
from pem_rt.errors import PemError
from pem_rt.onnx_props import read_props

CHECKPOINT = "checkpoint"
REFERENCE = "reference"
FP16 = "fp16"
INT8 = "int8"
TENSORRT_GRAPH = "tensorrt-graph"
ENGINE = "engine"
CALIBRATION_CACHE = "calibration-cache"
SCRATCH = "scratch"
ROLES = (CHECKPOINT, REFERENCE, FP16, INT8, TENSORRT_GRAPH, ENGINE, CALIBRATION_CACHE, SCRATCH)
GRAPH_ROLES = (REFERENCE, FP16, INT8, TENSORRT_GRAPH, SCRATCH)
ROLE_KEY, PARENT_KEY, REFERENCE_KEY = "pem.role", "pem.parent_sha256", "pem.reference_sha256"
EXPORT_COMMAND = "pem export --size HxW"
STREAM_PRECISIONS = ("fp16", "int8", "fp32")  # the stream's preference among engines of one reference


@dataclass(frozen=True)
class Lineage:
    """role: one of ROLES; parent_sha256: the file it was made from ("" when none, e.g. random weights);
    reference_sha256: the reference graph it descends from ("" for the reference graph itself)."""

    role: str
    parent_sha256: str = ""
    reference_sha256: str = ""

    def to_props(self) -> dict[str, str]:
        return {ROLE_KEY: self.role, PARENT_KEY: self.parent_sha256, REFERENCE_KEY: self.reference_sha256}

    @staticmethod
    def from_props(props: dict[str, str], source: str) -> Lineage | None:
        """The lineage an ONNX graph records; None for a graph written before lineage existed."""
        role = props.get(ROLE_KEY)
        if role is None:
            return None
        if role not in GRAPH_ROLES:
            raise PemError(f"{source}: unknown artefact role {role!r} in its metadata; re-export it")
        return Lineage(role, props.get(PARENT_KEY, ""), props.get(REFERENCE_KEY, ""))


def stamp(proto: Any, lineage: Lineage) -> None:
    """Set ``lineage`` in an onnx.ModelProto's metadata_props (replacing any lineage it had)."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in lineage.to_props()]
    del proto.metadata_props[:]
    for key, value in [*kept, *lineage.to_props().items()]:
        proto.metadata_props.add(key=key, value=value)


def lineage_of(proto: Any, source: str) -> Lineage | None:
    return Lineage.from_props({p.key: p.value for p in proto.metadata_props}, source)


def derived(parent: Path, parent_proto: Any, role: str) -> Lineage:
    """The lineage of a graph made from ``parent`` (whose loaded proto is ``parent_proto``)."""
    from pem_rt.engine_meta import sha256_file

    sha = sha256_file(parent)
    up = lineage_of(parent_proto, str(parent))
    reference = sha if up is None or up.role == REFERENCE else up.reference_sha256
    return Lineage(role, sha, reference)


def guess_role(path: Path) -> str:
    """The role of a graph without lineage metadata, from the names our commands gave them."""
    name = path.name
    if ".debug." in name or ".int8-" in name:
        return SCRATCH
    for suffix, role in ((".trt.onnx", TENSORRT_GRAPH), (".fp16.onnx", FP16), (".int8.onnx", INT8)):
        if name.endswith(suffix):
            return role
    return REFERENCE


@dataclass(frozen=True)
class Graph:
    path: Path
    role: str
    lineage: Lineage | None  # None: written before lineage existed (role guessed from the name)

    @property
    def why(self) -> str:
        if self.lineage is None:
            return "no lineage in its metadata (an older export): taken for a reference graph by its name"
        return "role 'reference' in its metadata"


def graphs(root: Path | None = None) -> list[Graph]:
    """Every readable ONNX graph under the runs root with its role (unreadable ones are skipped)."""
    root = runs_root() if root is None else root
    found = []
    for path in sorted(root.rglob("*.onnx")) if root.is_dir() else []:
        if not path.is_file():
            continue
        try:
            lineage = Lineage.from_props(read_props(path), str(path))
        except PemError:
            continue
        found.append(Graph(path, lineage.role if lineage else guess_role(path), lineage))
    return found


def require_reference(path: Path, flag: str = "--onnx", also: tuple[str, ...] = ()) -> None:
    """Refuse a graph whose lineage says it is not a reference graph (FP16, INT8, TensorRT, scratch), or
    one of the roles ``also`` allows (`pem compare` derives its scratch graphs from its scratch export)."""
    lineage = Lineage.from_props(read_props(path), str(path))
    role = lineage.role if lineage is not None else guess_role(path)
    if role == REFERENCE or role in also or (lineage is None and role == SCRATCH):
        return
    raise PemError(
        f"{flag} {path} is a{'n' if role[0] in 'aeio' else ''} {role} graph, not a reference graph; pass the "
        f"graph `pem export` wrote{' (role reference)' if lineage is not None else ''}"
    )


def _listing(paths: Iterable[Path]) -> str:
    return ", ".join(str(p) for p in paths)


def pick_reference(flag: str = "--onnx", log: Callable[[str], None] = print) -> Path:
    """The reference graph a command takes by default, said in one line; PemError when none or ambiguous."""
    root = runs_root()
    refs = [g for g in graphs(root) if g.role == REFERENCE]
    if not refs:
        raise PemError(f"no reference graph under {root}/; run `{EXPORT_COMMAND}` first or pass {flag}")
    if len(refs) > 1:
        current = _current(refs)
        if current is None:
            raise PemError(
                f"{len(refs)} reference graphs under {root}/ ({_listing(g.path for g in refs)}); "
                f"pass {flag} to choose one"
            )
        log(
            f"using reference graph {current.path} (made from the checkpoint beside it, as it is now; "
            f"{len(refs) - 1} other reference graphs under {root}/ are not; pass {flag} to choose another)"
        )
        return current.path
    only = refs[0]
    log(f"using reference graph {only.path} (the only one under {root}/: {only.why}; {flag} chooses another)")
    return only.path


def _current(refs: list[Graph]) -> Graph | None:
    """The one reference graph made from a checkpoint that is still beside it unchanged, if exactly one."""
    from pem_rt.engine_meta import sha256_file

    hashes: dict[Path, str] = {}
    current = []
    for g in refs:
        if g.lineage is None or not g.lineage.parent_sha256:
            continue
        for ckpt in (g.path.parent / "best.pt", g.path.parent / "last.pt"):
            if ckpt.is_file():
                hashes.setdefault(ckpt, sha256_file(ckpt))
                if hashes[ckpt] == g.lineage.parent_sha256:
                    current.append(g)
                    break
    return current[0] if len(current) == 1 else None


def engines_of(reference: Path, root: Path | None = None) -> list[Path]:
    """Engines under the runs root whose sidecar says they were built from ``reference`` (by SHA-256)."""
    from pem_rt.engine_meta import read_sidecar, sha256_file

    root = runs_root() if root is None else root
    sha = sha256_file(reference)
    found = []
    for engine in sorted(root.rglob("*.engine")) if root.is_dir() else []:
        try:
            if read_sidecar(engine).onnx_sha256 == sha:
                found.append(engine)
        except PemError:
            continue
    return found


def pick_engine(reference: Path, engines: list[Path], log: Callable[[str], None] = print) -> Path | None:
    """Among the engines made from ``reference``, the one the stream runs (by precision; said in one line)."""
    from pem_rt.engine_meta import read_sidecar

    if not engines:
        return None
    by_precision: dict[str, list[Path]] = {}
    for e in engines:
        by_precision.setdefault(read_sidecar(e).precision, []).append(e)
    for precision in STREAM_PRECISIONS:
        chosen = by_precision.get(precision, [])
        if len(chosen) > 1:
            raise PemError(
                f"{len(chosen)} {precision} engines made from {reference} ({_listing(chosen)}); "
                "pass --engine to choose one"
            )
        if chosen:
            others = len(engines) - 1
            log(
                f"using engine {chosen[0]} (made from the reference graph {reference}; {precision}"
                + (
                    f", preferred over {others} other engine{'s' if others > 1 else ''} of it"
                    if others
                    else ""
                )
                + "; pass --engine or --onnx to choose another)"
            )
            return chosen[0]
    return None


def pick_checkpoint(flag: str = "--checkpoint", log: Callable[[str], None] = print) -> Path:
    """The checkpoint `pem export` and `pem compare` take by default: the best.pt (else last.pt) of the one
    run folder under the runs root that has one; several run folders are a one-line error listing them."""
    root = runs_root()
    runs = sorted({p.parent for name in ("best.pt", "last.pt") for p in root.rglob(name) if p.is_file()})
    if not runs:
        raise PemError(f"no checkpoint under {root}/; run `pem train --data DIR` first or pass {flag}")
    if len(runs) > 1:
        raise PemError(
            f"{len(runs)} training runs under {root}/ ({_listing(runs)}); pass {flag} to choose one"
        )
    best = runs[0] / "best.pt"
    path = best if best.is_file() else runs[0] / "last.pt"
    log(f"using checkpoint {path} (the only training run under {root}/; pass {flag} to choose another)")
    return path
