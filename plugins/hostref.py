"""The kernels' element math on the CPU: ctypes bindings of ``libpem_plugins_hostref.so``.

The host library runs plain loops over output elements that call exactly the ``__host__ __device__``
functions the CUDA kernels call (``*_math.cuh``), in the kernels' order, so tests on a machine without a
GPU check the arithmetic of the kernels against PyTorch. numpy in, numpy out; float32 or float16.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pem_rt.errors import PemError

FLOAT32, FLOAT16 = 0, 1
_DTYPE_CODES = {np.dtype(np.float32): FLOAT32, np.dtype(np.float16): FLOAT16}


class DcnShape(ctypes.Structure):
    """``PemDcnShape`` of deform_conv_math.cuh."""

    _fields_ = [
        ("batch", ctypes.c_int32),
        ("in_channels", ctypes.c_int32),
        ("height", ctypes.c_int32),
        ("width", ctypes.c_int32),
        ("out_channels", ctypes.c_int32),
        ("kernel_h", ctypes.c_int32),
        ("kernel_w", ctypes.c_int32),
        ("out_height", ctypes.c_int32),
        ("out_width", ctypes.c_int32),
        ("stride_h", ctypes.c_int32),
        ("stride_w", ctypes.c_int32),
        ("pad_h", ctypes.c_int32),
        ("pad_w", ctypes.c_int32),
        ("dilation_h", ctypes.c_int32),
        ("dilation_w", ctypes.c_int32),
        ("groups", ctypes.c_int32),
        ("deformable_groups", ctypes.c_int32),
    ]


class PsShape(ctypes.Structure):
    """``PemPsShape`` of prototype_selection_math.cuh."""

    _fields_ = [(name, ctypes.c_int32) for name in ("batch", "tokens", "queries", "channels", "heads")]


class PsPlan(ctypes.Structure):
    """``PemPsPlan`` of prototype_selection_math.cuh."""

    _fields_ = [
        (name, ctypes.c_int32)
        for name in ("query_tile", "token_chunk", "splits", "tokens_per_split", "shared_bytes")
    ]


@dataclass(frozen=True)
class Plan:
    query_tile: int
    token_chunk: int
    splits: int
    tokens_per_split: int
    shared_bytes: int


@functools.lru_cache(maxsize=4)
def _library(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    p = ctypes.c_void_p
    lib.pem_host_modulated_deform_conv2d.restype = ctypes.c_int32
    lib.pem_host_modulated_deform_conv2d.argtypes = [
        ctypes.c_int32,
        ctypes.POINTER(DcnShape),
        p,
        p,
        p,
        p,
        p,
        p,
    ]
    lib.pem_host_prototype_selection_plan.restype = ctypes.c_int32
    lib.pem_host_prototype_selection_plan.argtypes = [
        ctypes.POINTER(PsShape),
        ctypes.c_int32,
        ctypes.POINTER(PsPlan),
    ]
    lib.pem_host_prototype_selection_workspace_size.restype = ctypes.c_size_t
    lib.pem_host_prototype_selection_workspace_size.argtypes = [ctypes.POINTER(PsShape)]
    # The real launchers, compiled against the CPU emulation of CUDA (hosttest/cuda_emulation.h).
    lib.pem_modulated_deform_conv2d.restype = ctypes.c_int
    lib.pem_modulated_deform_conv2d.argtypes = [ctypes.c_int32, ctypes.POINTER(DcnShape), p, p, p, p, p, p, p]
    lib.pem_prototype_selection_workspace_size.restype = ctypes.c_size_t
    lib.pem_prototype_selection_workspace_size.argtypes = [ctypes.POINTER(PsShape)]
    lib.pem_prototype_selection.restype = ctypes.c_int
    lib.pem_prototype_selection.argtypes = [ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(PsShape)]
    lib.pem_prototype_selection.argtypes += [p, p, p, p, p, p, ctypes.c_size_t, p]
    lib.pem_emulation_set_multiprocessors.restype = None
    lib.pem_emulation_set_multiprocessors.argtypes = [ctypes.c_int32]
    lib.pem_host_prototype_selection.restype = ctypes.c_int32
    lib.pem_host_prototype_selection.argtypes = [
        ctypes.c_int32,
        ctypes.c_int32,
        ctypes.POINTER(PsShape),
        ctypes.POINTER(PsPlan),
        p,
        p,
        p,
        p,
        ctypes.POINTER(ctypes.c_int32),
    ]
    return lib


def library(path: str | Path | None = None) -> ctypes.CDLL:
    """The host library at ``path``, or the one ``plugins.build()`` makes (building it when needed)."""
    if path is None:
        from plugins.builder import build

        path = build().hostref
    return _library(str(path))


def _code(*arrays: npt.NDArray[np.generic]) -> int:
    dtype = arrays[0].dtype
    if dtype not in _DTYPE_CODES or any(a.dtype != dtype for a in arrays):
        raise PemError(
            f"host reference takes float32 or float16 arrays of one dtype, got {[a.dtype for a in arrays]}"
        )
    return _DTYPE_CODES[dtype]


def _ptr(a: npt.NDArray[np.generic] | None) -> int | None:
    return None if a is None else a.ctypes.data


def dcn_output_extent(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _dcn_call(
    x: npt.NDArray[np.floating],
    offset: npt.NDArray[np.floating],
    mask: npt.NDArray[np.floating],
    weight: npt.NDArray[np.floating],
    bias: npt.NDArray[np.floating] | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    deformable_groups: int,
    run: Callable[..., int],
) -> npt.NDArray[np.floating]:
    arrays = [np.ascontiguousarray(a) for a in (x, offset, mask, weight)]
    b = None if bias is None else np.ascontiguousarray(bias)
    code = _code(*arrays, *([b] if b is not None else []))
    xa, oa, ma, wa = arrays
    n, cin, h, w = xa.shape
    cout, _, kh, kw = wa.shape
    ho = dcn_output_extent(h, kh, stride[0], padding[0], dilation[0])
    wo = dcn_output_extent(w, kw, stride[1], padding[1], dilation[1])
    shape = DcnShape(
        n, cin, h, w, cout, kh, kw, ho, wo, *stride, *padding, *dilation, groups, deformable_groups
    )
    out = np.empty((n, cout, ho, wo), dtype=xa.dtype)
    status = run(code, ctypes.byref(shape), _ptr(xa), _ptr(oa), _ptr(ma), _ptr(wa), _ptr(b), _ptr(out))
    if status != 0:
        raise PemError(f"deform conv rejected the shape {shape_dict(shape)} (status {status})")
    return out


def deform_conv2d(
    x: npt.NDArray[np.floating],
    offset: npt.NDArray[np.floating],
    mask: npt.NDArray[np.floating],
    weight: npt.NDArray[np.floating],
    bias: npt.NDArray[np.floating] | None = None,
    *,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    deformable_groups: int = 1,
    lib: ctypes.CDLL | None = None,
) -> npt.NDArray[np.floating]:
    """ModulatedDeformConv2d through the kernel's element math in a plain loop; NCHW arrays of one dtype."""
    run = (lib or library()).pem_host_modulated_deform_conv2d
    return _dcn_call(x, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups, run)


def emulated_deform_conv2d(
    x: npt.NDArray[np.floating],
    offset: npt.NDArray[np.floating],
    mask: npt.NDArray[np.floating],
    weight: npt.NDArray[np.floating],
    bias: npt.NDArray[np.floating] | None = None,
    *,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    deformable_groups: int = 1,
    lib: ctypes.CDLL | None = None,
) -> npt.NDArray[np.floating]:
    """ModulatedDeformConv2d through the real CUDA kernel and launcher, run by the CPU emulation."""
    launcher = (lib or library()).pem_modulated_deform_conv2d

    def run(*args: object) -> int:
        return int(launcher(*args, None))

    return _dcn_call(x, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups, run)


def shape_dict(shape: ctypes.Structure) -> dict[str, int]:
    return {field[0]: int(getattr(shape, field[0])) for field in shape._fields_}


def prototype_plan(
    batch: int,
    tokens: int,
    queries: int,
    channels: int,
    heads: int,
    sm_count: int,
    lib: ctypes.CDLL | None = None,
) -> Plan:
    """The tiling the CUDA launcher picks on a GPU with ``sm_count`` multiprocessors."""
    plan = PsPlan()
    shape = PsShape(batch, tokens, queries, channels, heads)
    if (lib or library()).pem_host_prototype_selection_plan(
        ctypes.byref(shape), sm_count, ctypes.byref(plan)
    ) != 0:
        raise PemError(f"no prototype-selection plan for {shape_dict(shape)}")
    return Plan(plan.query_tile, plan.token_chunk, plan.splits, plan.tokens_per_split, plan.shared_bytes)


def prototype_workspace_bytes(
    batch: int, queries: int, channels: int, heads: int, tokens: int = 1, lib: ctypes.CDLL | None = None
) -> int:
    """Device workspace of the fused kernel: O(batch * heads * queries), whatever ``tokens`` is."""
    shape = PsShape(batch, tokens, queries, channels, heads)
    return int((lib or library()).pem_host_prototype_selection_workspace_size(ctypes.byref(shape)))


def prototype_selection(
    features: npt.NDArray[np.floating],
    queries: npt.NDArray[np.floating],
    mask_logits: npt.NDArray[np.floating],
    heads: int,
    *,
    sm_count: int = 132,
    plan: Plan | None = None,
    lib: ctypes.CDLL | None = None,
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.int32]]:
    """PrototypeSelection through the kernels' element math, following the kernels' split structure.

    Returns (prototypes [B, Q, C] in the features' dtype, indices int32 [B, heads, Q]).
    """
    lib = lib or library()
    f = np.ascontiguousarray(features)
    q = np.ascontiguousarray(queries)
    m = np.ascontiguousarray(mask_logits)
    code = _code(f, q)
    mask_code = _code(m)
    b, n, c = f.shape
    nq = q.shape[1]
    if q.shape != (b, nq, c) or m.shape != (b, nq, n):
        raise PemError(f"prototype selection shapes disagree: {f.shape}, {q.shape}, {m.shape}")
    chosen = plan or prototype_plan(b, n, nq, c, heads, sm_count, lib)
    c_plan = PsPlan(
        chosen.query_tile, chosen.token_chunk, chosen.splits, chosen.tokens_per_split, chosen.shared_bytes
    )
    shape = PsShape(b, n, nq, c, heads)
    out = np.empty((b, nq, c), dtype=f.dtype)
    indices = np.empty((b, heads, nq), dtype=np.int32)
    status = lib.pem_host_prototype_selection(
        code,
        mask_code,
        ctypes.byref(shape),
        ctypes.byref(c_plan),
        _ptr(f),
        _ptr(q),
        _ptr(m),
        _ptr(out),
        indices.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
    )
    if status != 0:
        raise PemError(f"host prototype selection rejected {shape_dict(shape)} with plan {chosen}")
    return out, indices


def emulated_prototype_selection(
    features: npt.NDArray[np.floating],
    queries: npt.NDArray[np.floating],
    mask_logits: npt.NDArray[np.floating],
    heads: int,
    *,
    sm_count: int = 132,
    lib: ctypes.CDLL | None = None,
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.int32]]:
    """PrototypeSelection through the real CUDA kernels and launcher (plan for ``sm_count`` multiprocessors,
    workspace, three kernels), run by the CPU emulation. Returns (prototypes, indices [B, heads, Q])."""
    lib = lib or library()
    f = np.ascontiguousarray(features)
    q = np.ascontiguousarray(queries)
    m = np.ascontiguousarray(mask_logits)
    code, mask_code = _code(f, q), _code(m)
    b, n, c = f.shape
    nq = q.shape[1]
    shape = PsShape(b, n, nq, c, heads)
    workspace = np.zeros(int(lib.pem_prototype_selection_workspace_size(ctypes.byref(shape))), dtype=np.uint8)
    out = np.empty((b, nq, c), dtype=f.dtype)
    indices = np.empty((b, heads, nq), dtype=np.int32)
    lib.pem_emulation_set_multiprocessors(sm_count)
    status = lib.pem_prototype_selection(
        code,
        mask_code,
        ctypes.byref(shape),
        _ptr(f),
        _ptr(q),
        _ptr(m),
        _ptr(out),
        _ptr(indices),
        _ptr(workspace),
        workspace.size,
        None,
    )
    if status != 0:
        raise PemError(f"prototype selection launcher rejected {shape_dict(shape)} (status {status})")
    return out, indices
