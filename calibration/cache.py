"""The INT8 calibration cache: activation scales in TensorRT's text format, keyed by what they depend on.

First line: ``PEM-RT-calibration-2 <json header>`` (TensorRT and ModelOpt skip the first line); then one
``<tensor name>: <scale as big-endian float32 hex>`` per tensor, scale = amax / 127. The header holds the
key (the reference model's SHA-256, the input size, the method and percentile, a hash of the frames), so
a cache is reused only for the same model and settings and ignored, with a message, otherwise; its role
(``calibration-cache``) and, for integrity, the number of entries and the SHA-256 of the lines after the
header: a truncated or damaged cache is said in one line and recomputed, never half used. Caches of the
first format (no checksum) are still read.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pem_rt.errors import PemError
from pem_rt.files import atomic_write_text
from pem_rt.lineage import CALIBRATION_CACHE

HEADER = "PEM-RT-calibration-2"
LEGACY_HEADER = "PEM-RT-calibration-1"


class DamagedCache(PemError):
    """A calibration cache that is cut short or altered (read_cache recomputes it)."""


@dataclass(frozen=True)
class CalibrationKey:
    model_sha256: str
    input_size: tuple[int, int]
    method: str
    percentile: float | None
    num_frames: int
    frames_sha256: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def frames_digest(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()


def _body_sha256(lines: list[str]) -> str:
    return hashlib.sha256("".join(f"{line}\n" for line in lines).encode("utf-8")).hexdigest()


def write_cache(path: Path, key: CalibrationKey, amax: dict[str, float]) -> Path:
    body = [f"{name}: {struct.pack('!f', max(value, 1e-8) / 127.0).hex()}" for name, value in amax.items()]
    header = {
        "key": json.loads(key.to_json()),
        "role": CALIBRATION_CACHE,
        "entries": len(body),
        "body_sha256": _body_sha256(body),
    }
    return atomic_write_text(
        path, "\n".join([f"{HEADER} {json.dumps(header, sort_keys=True)}", *body]) + "\n"
    )


def _scales(lines: list[str]) -> dict[str, float]:
    scales = {}
    for line in lines:
        name, sep, hexval = line.rpartition(": ")
        if not sep or not name:
            raise DamagedCache(f"line {line[:40]!r} is not '<tensor>: <scale>'")
        try:
            (scale,) = struct.unpack("!f", bytes.fromhex(hexval))
        except (ValueError, struct.error):
            raise DamagedCache(f"scale {hexval[:16]!r} of {name[:40]} is not 8 hex digits") from None
        if not math.isfinite(scale) or scale <= 0:
            raise DamagedCache(f"scale of {name[:40]} is {scale}")
        scales[name] = scale
    return scales


def parse_cache(text: str) -> tuple[dict[str, object], dict[str, float]]:
    """(key, scales) of a cache of either format; DamagedCache when it is cut or altered."""
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if first.startswith(LEGACY_HEADER + " "):
        try:
            key = json.loads(first[len(LEGACY_HEADER) + 1 :])
        except (json.JSONDecodeError, RecursionError):
            raise DamagedCache("its header is not JSON") from None
        if not isinstance(key, dict):
            raise DamagedCache("its header is not a JSON object")
        return key, _scales(lines[1:])
    try:
        header = json.loads(first[len(HEADER) + 1 :])
    except (json.JSONDecodeError, RecursionError):
        raise DamagedCache("its header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("key"), dict):
        raise DamagedCache("its header has no key")
    body = lines[1:]
    entries = header.get("entries")
    if entries != len(body):
        raise DamagedCache(f"{len(body)} of {entries} entries: truncated or cut")
    if header.get("body_sha256") != _body_sha256(body) or not text.endswith("\n"):
        raise DamagedCache("its checksum does not match")
    return header["key"], _scales(body)


def read_cache(path: Path, key: CalibrationKey) -> dict[str, float] | None:
    """Scales by tensor name when ``path`` holds an intact cache for ``key``; None (and says why, in one
    line) otherwise: not ours, another model or settings, or damaged (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        print(f"calibration cache {path} is unreadable ({type(e).__name__}): calibrating again")
        return None
    if not text.startswith((HEADER + " ", LEGACY_HEADER + " ")):
        print(f"calibration cache {path} was not written by PEM-RT: ignoring it, calibrating again")
        return None
    try:
        stored, scales = parse_cache(text)
    except DamagedCache as e:
        print(f"calibration cache {path} is damaged ({e}): calibrating again")
        return None
    wanted = json.loads(key.to_json())
    if stored != wanted:
        changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
        print(
            f"calibration cache {path} is for other settings ({', '.join(changed)} differ): calibrating again"
        )
        return None
    return scales
