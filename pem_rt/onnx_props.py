"""Read an ONNX file's ``metadata_props`` without the ``onnx`` package and without decoding its graph.

An ONNX file is one protobuf ``ModelProto``; its metadata is the repeated field 14 of
``StringStringEntryProto`` (key = 1, value = 2). This reader walks the top-level fields of the memory-
mapped file and skips every other field (the graph, weights included) by its length, so reading the
metadata of a large model touches only a few pages and costs microseconds.
"""

from __future__ import annotations

import mmap
import os

from pem_rt.errors import PemError

METADATA_PROPS = 14  # ModelProto.metadata_props
_KEY, _VALUE = 1, 2  # StringStringEntryProto fields
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5  # the wire types ModelProto uses


class NotOnnx(ValueError):
    """The bytes are not a protobuf message (so not an ONNX file)."""


def _varint(buf: bytes | mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise NotOnnx("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes | mmap.mmap, pos: int, end: int) -> list[tuple[int, int, int]]:
    """(field number, start, end) of every length-delimited field in buf[pos:end]; others are skipped."""
    out = []
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise NotOnnx("field number 0")
        if wire == _VARINT:
            _, pos = _varint(buf, pos, end)
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        elif wire == _LEN:
            size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise NotOnnx("field runs past the end")
            out.append((number, pos, pos + size))
            pos += size
        else:
            raise NotOnnx(f"wire type {wire}")
    if pos != end:
        raise NotOnnx("field runs past the end")
    return out


def read_metadata_props(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX file at ``path``; :class:`NotOnnx` when it is not protobuf."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise NotOnnx("empty file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _props(buf, size)


def _props(buf: bytes | mmap.mmap, size: int) -> dict[str, str]:
    props: dict[str, str] = {}
    for number, start, end in _fields(buf, 0, size):
        if number != METADATA_PROPS:
            continue
        entry = {n: buf[s:e] for n, s, e in _fields(buf, start, end)}
        try:
            key = entry.get(_KEY, b"").decode("utf-8")
            props[key] = entry.get(_VALUE, b"").decode("utf-8")
        except UnicodeDecodeError as e:
            raise NotOnnx(f"metadata is not UTF-8 ({e.reason})") from None
    return props


def props_from_bytes(data: bytes, source: str) -> dict[str, str]:
    """:func:`read_metadata_props` of bytes in memory; a PemError naming ``source`` when not ONNX."""
    try:
        return _props(data, len(data))
    except NotOnnx as e:
        raise PemError(
            f"{source} is not a readable ONNX file ({e}); re-export it with `pem export`"
        ) from None


def read_props(path: str | os.PathLike[str]) -> dict[str, str]:
    """:func:`read_metadata_props` with a one-line PemError naming the file when it cannot be read."""
    try:
        return read_metadata_props(path)
    except OSError as e:
        raise PemError(f"cannot read {path} ({e.strerror})") from None
    except NotOnnx as e:
        raise PemError(f"{path} is not a readable ONNX file ({e}); re-export it with `pem export`") from None
