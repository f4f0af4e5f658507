"""An ONNX file's ``metadata_props`` read without the ``onnx`` package and without loading the graph.

ONNX files are protobuf ``ModelProto`` messages; the metadata is field 14 (``StringStringEntryProto``:
key = 1, value = 2). The top-level fields are walked and every other field (the graph, the weights) is
skipped by its length, so listing the artefacts under ``runs/`` stays fast and torch-free (the edge
runtime has no ``onnx`` package). A damaged file is a :class:`PemError` naming it, never a traceback.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

from pem_rt.errors import PemError

METADATA_FIELD = 14
_MAX_PROP = 1 << 24  # 16 MiB: no metadata entry of ours is anywhere near that


class _Damaged(ValueError):
    pass


def _varint(f: BinaryIO) -> int | None:
    """The next varint, or None at a clean end of the stream."""
    result, shift = 0, 0
    while True:
        b = f.read(1)
        if not b:
            if shift == 0:
                return None
            raise _Damaged("cut inside a varint")
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise _Damaged("varint longer than 10 bytes")


def _skip(f: BinaryIO, wire: int, size: int) -> None:
    if wire == 0:
        if _varint(f) is None:
            raise _Damaged("cut inside a varint")
        return
    n = {1: 8, 5: 4}.get(wire)
    if wire == 2:
        n = _varint(f)
        if n is None:
            raise _Damaged("cut inside a length")
    if n is None:
        raise _Damaged(f"unknown wire type {wire}")
    if f.tell() + n > size:
        raise _Damaged("a field runs past the end of the file")
    f.seek(n, os.SEEK_CUR)


def _entry(data: bytes) -> tuple[str, str]:
    f = io.BytesIO(data)
    key = value = ""
    while (tag := _varint(f)) is not None:
        field, wire = tag >> 3, tag & 7
        if field in (1, 2) and wire == 2:
            n = _varint(f)
            if n is None or f.tell() + n > len(data):
                raise _Damaged("metadata entry cut short")
            text = f.read(n).decode("utf-8")
            key, value = (text, value) if field == 1 else (key, text)
        else:
            _skip(f, wire, len(data))
    return key, value


def parse_props(f: BinaryIO, size: int) -> dict[str, str]:
    """metadata_props of the ModelProto in ``f`` (``size`` bytes); raises ValueError when damaged."""
    props: dict[str, str] = {}
    while (tag := _varint(f)) is not None:
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise _Damaged("field number 0")
        if field == METADATA_FIELD and wire == 2:
            n = _varint(f)
            if n is None or n > _MAX_PROP or f.tell() + n > size:
                raise _Damaged("metadata entry cut short")
            key, value = _entry(f.read(n))
            props[key] = value
        else:
            _skip(f, wire, size)
    return props


def props_from_bytes(data: bytes, source: str) -> dict[str, str]:
    try:
        return parse_props(io.BytesIO(data), len(data))
    except (ValueError, UnicodeDecodeError) as e:
        raise PemError(
            f"{source} is not a readable ONNX file ({e}); re-export it with `pem export`"
        ) from None


def read_props(path: str | os.PathLike[str]) -> dict[str, str]:
    """metadata_props of the ONNX file at ``path`` (PemError when unreadable or damaged)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            return parse_props(f, size)
    except OSError as e:
        raise PemError(f"cannot read {path} ({e.strerror})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise PemError(f"{path} is not a readable ONNX file ({e}); re-export it with `pem export`") from None
