"""The plugin library's CUDA launchers on PyTorch CUDA tensors (ctypes), for GPU tests and benchmarks.

``libpem_plugins.so`` exports C entry points beside the TensorRT ones (``pem_modulated_deform_conv2d``,
``pem_prototype_selection``); they run the very kernels the plugins enqueue, on the current PyTorch
stream. Inputs must be contiguous CUDA tensors of one dtype (float32 or float16).
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import TYPE_CHECKING

from pem_rt.errors import PemError
from plugins.hostref import DcnShape, PsShape, dcn_output_extent

if TYPE_CHECKING:
    import torch

FLOAT32, FLOAT16 = 0, 1


@functools.lru_cache(maxsize=4)
def _library(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    p = ctypes.c_void_p
    lib.pem_modulated_deform_conv2d.restype = ctypes.c_int
    lib.pem_modulated_deform_conv2d.argtypes = [ctypes.c_int32, ctypes.POINTER(DcnShape), p, p, p, p, p, p, p]
    lib.pem_prototype_selection_workspace_size.restype = ctypes.c_size_t
    lib.pem_prototype_selection_workspace_size.argtypes = [ctypes.POINTER(PsShape)]
    lib.pem_prototype_selection.restype = ctypes.c_int
    lib.pem_prototype_selection.argtypes = [
        ctypes.c_int32,
        ctypes.c_int32,
        ctypes.POINTER(PsShape),
        p,
        p,
        p,
        p,
        p,
        p,
        ctypes.c_size_t,
        p,
    ]
    return lib


def library(path: str | os.PathLike[str] | None = None) -> ctypes.CDLL:
    if path is None:
        from plugins.builder import build

        path = build().library
    return _library(str(path))


def _code(t: torch.Tensor) -> int:
    import torch

    if t.dtype == torch.float32:
        return FLOAT32
    if t.dtype == torch.float16:
        return FLOAT16
    raise PemError(f"the CUDA launchers take float32 or float16 tensors, got {t.dtype}")


def _check(status: int, what: str) -> None:
    if status != 0:
        raise PemError(f"{what} failed with CUDA error {status}")


def _stream() -> int:
    import torch

    return int(torch.cuda.current_stream().cuda_stream)


def deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    deformable_groups: int = 1,
    lib: ctypes.CDLL | None = None,
) -> torch.Tensor:
    """ModulatedDeformConv2d with the plugin's kernel (same semantics as torchvision.ops.deform_conv2d)."""
    import torch

    tensors = [t.contiguous() for t in (x, offset, mask, weight)]
    b = bias.contiguous() if bias is not None else None
    code = _code(tensors[0])
    n, cin, h, w = tensors[0].shape
    cout, _, kh, kw = tensors[3].shape
    ho = dcn_output_extent(h, kh, stride[0], padding[0], dilation[0])
    wo = dcn_output_extent(w, kw, stride[1], padding[1], dilation[1])
    shape = DcnShape(
        n, cin, h, w, cout, kh, kw, ho, wo, *stride, *padding, *dilation, groups, deformable_groups
    )
    out = torch.empty((n, cout, ho, wo), dtype=x.dtype, device=x.device)
    status = (lib or library()).pem_modulated_deform_conv2d(
        code,
        ctypes.byref(shape),
        *(t.data_ptr() for t in tensors),
        b.data_ptr() if b is not None else None,
        out.data_ptr(),
        _stream(),
    )
    _check(status, "pem_modulated_deform_conv2d")
    return out


def prototype_workspace_bytes(
    batch: int, queries: int, channels: int, heads: int, lib: ctypes.CDLL | None = None
) -> int:
    shape = PsShape(batch, 1, queries, channels, heads)
    return int((lib or library()).pem_prototype_selection_workspace_size(ctypes.byref(shape)))


def prototype_selection(
    features: torch.Tensor,
    queries: torch.Tensor,
    mask_logits: torch.Tensor,
    heads: int,
    *,
    lib: ctypes.CDLL | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PrototypeSelection with the plugin's fused kernels.

    Returns (prototypes [B, Q, C], indices int32 [B, heads, Q]).
    """
    import torch

    lib = lib or library()
    f, q, m = features.contiguous(), queries.contiguous(), mask_logits.contiguous()
    if q.dtype != f.dtype:
        raise PemError(f"queries must have the features' dtype {f.dtype}, got {q.dtype}")
    b, n, c = f.shape
    nq = q.shape[1]
    shape = PsShape(b, n, nq, c, heads)
    workspace_bytes = int(lib.pem_prototype_selection_workspace_size(ctypes.byref(shape)))
    workspace = torch.empty(workspace_bytes, dtype=torch.uint8, device=f.device)
    out = torch.empty((b, nq, c), dtype=f.dtype, device=f.device)
    indices = torch.empty((b, heads, nq), dtype=torch.int32, device=f.device)
    status = lib.pem_prototype_selection(
        _code(f),
        _code(m),
        ctypes.byref(shape),
        f.data_ptr(),
        q.data_ptr(),
        m.data_ptr(),
        out.data_ptr(),
        indices.data_ptr(),
        workspace.data_ptr(),
        workspace_bytes,
        _stream(),
    )
    _check(status, "pem_prototype_selection")
    return out, indices
