"""The INT8 calibration cache: activation scales in TensorRT's text format, keyed by what they depend on.

First line: ``PEM-RT-calibration-1 <json key>`` (TensorRT and ModelOpt skip the first line); then one
``<tensor name>: <scale as big-endian float32 hex>`` per tensor, scale = amax / 127. The key holds the
reference model's SHA-256, the input size, the method (and percentile) and a hash of the frames, so a
cache is reused only for the same model and settings and ignored, with a message, otherwise.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pem_rt.files import atomic_write_text

HEADER = "PEM-RT-calibration-1"


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


def write_cache(path: Path, key: CalibrationKey, amax: dict[str, float]) -> Path:
    lines = [f"{HEADER} {key.to_json()}"]
    for name, value in amax.items():
        scale = max(value, 1e-8) / 127.0
        lines.append(f"{name}: {struct.pack('!f', scale).hex()}")
    return atomic_write_text(path, "\n".join(lines) + "\n")


def read_cache(path: Path, key: CalibrationKey) -> dict[str, float] | None:
    """Scales by tensor name when ``path`` holds a cache for ``key``; None (and says why) otherwise."""
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith(HEADER + " "):
        print(f"calibration cache {path} was not written by PEM-RT: ignoring it, calibrating again")
        return None
    try:
        stored = json.loads(lines[0][len(HEADER) + 1 :])
    except json.JSONDecodeError:
        stored = {}
    wanted = json.loads(key.to_json())
    if stored != wanted:
        changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
        print(
            f"calibration cache {path} is for other settings ({', '.join(changed)} differ): calibrating again"
        )
        return None
    scales = {}
    for line in lines[1:]:
        name, _, hexval = line.rpartition(": ")
        scales[name] = struct.unpack("!f", bytes.fromhex(hexval))[0]
    return scales
