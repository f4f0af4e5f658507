"""FLOP counting in fvcore's convention (one multiply-add = one FLOP), the convention of the PEM paper.

Counts what fvcore counts -- convolutions (transposed too), matrix products (linear, bmm, einsum,
attention), batch/layer norm, bilinear up-sampling -- and additionally modulated deformable convolution,
which fvcore silently skips (its multiply-adds equal a normal conv's of the same shape). Element-wise ops
(activations, softmax, adds) are free, as in fvcore.

Works by intercepting aten operators (TorchDispatchMode), so it sees exactly what runs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten


def _numel(shape: Any) -> int:
    return math.prod(int(s) for s in shape)


def _conv(args: tuple[Any, ...], out: torch.Tensor) -> int:
    x, w = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    if transposed:  # every input pixel scatters a full kernel to Cout/groups channels
        return _numel(x.shape) * _numel(w.shape[1:])
    return _numel(out.shape) * _numel(w.shape[1:])


def _mm(args: tuple[Any, ...], out: torch.Tensor) -> int:
    a = args[-2] if len(args) == 3 else args[0]  # addmm(bias, a, b) / mm(a, b)
    return _numel(out.shape) * int(a.shape[-1])


def _bmm(args: tuple[Any, ...], out: torch.Tensor) -> int:
    a = (
        args[1]
        if len(args) >= 3 and args[0].dim() == 3 and args[1].dim() == 3 and args[2].dim() == 3
        else args[0]
    )
    return _numel(out.shape) * int(a.shape[-1])


def _sdpa(args: tuple[Any, ...], out: Any) -> int:
    q, k = args[0], args[1]
    b_h_q = _numel(q.shape[:-1])
    return 2 * b_h_q * int(k.shape[-2]) * int(q.shape[-1])


def _batch_norm(args: tuple[Any, ...], out: Any) -> int:
    # native_batch_norm(input, weight, bias, running_mean, running_var, training, ...): fvcore counts
    # 1 (2 with affine) per element in inference and 5 (4 without affine) in training
    training = bool(args[5]) if len(args) > 5 else False
    affine = args[1] is not None
    if training:
        return _numel(args[0].shape) * (5 if affine else 4)
    return _numel(args[0].shape) * (2 if affine else 1)


def _batch_norm_eval(args: tuple[Any, ...], out: Any) -> int:
    return _numel(args[0].shape) * (2 if args[1] is not None else 1)


def _norm_train(args: tuple[Any, ...], out: Any) -> int:
    return _numel(args[0].shape) * 5


def _upsample_bilinear(args: tuple[Any, ...], out: torch.Tensor) -> int:
    return 4 * _numel(out.shape)


def _deform_conv(args: tuple[Any, ...], out: torch.Tensor) -> int:
    w = args[1]  # torchvision::deform_conv2d(input, weight, offset, mask, bias, ...)
    return _numel(out.shape) * _numel(w.shape[1:])


_HANDLERS: dict[Any, Callable[[tuple[Any, ...], Any], int]] = {
    aten.convolution.default: _conv,
    aten.mm.default: _mm,
    aten.addmm.default: _mm,
    aten.bmm.default: _bmm,
    aten.baddbmm.default: _bmm,
    aten.native_batch_norm.default: _batch_norm,
    aten._native_batch_norm_legit_no_training.default: _batch_norm_eval,
    aten.native_layer_norm.default: _norm_train,
    aten.upsample_bilinear2d.vec: _upsample_bilinear,
    aten.upsample_bilinear2d.default: _upsample_bilinear,
    aten._scaled_dot_product_flash_attention_for_cpu.default: _sdpa,
    aten._scaled_dot_product_efficient_attention.default: _sdpa,
    aten._scaled_dot_product_flash_attention.default: _sdpa,
}


def _handlers() -> dict[Any, Callable[[tuple[Any, ...], Any], int]]:
    table = dict(_HANDLERS)
    if hasattr(torch.ops, "torchvision") and hasattr(torch.ops.torchvision, "deform_conv2d"):
        table[torch.ops.torchvision.deform_conv2d.default] = _deform_conv
    return table


class FlopCounter(TorchDispatchMode):
    """Context manager accumulating multiply-adds per operator in ``self.by_op``."""

    def __init__(self) -> None:
        super().__init__()
        self.by_op: Counter[str] = Counter()
        self._table = _handlers()

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        handler = self._table.get(func)
        if handler is not None:
            self.by_op[str(func.overloadpacket.__name__)] += handler(args, out)
        return out

    @property
    def total(self) -> int:
        return sum(self.by_op.values())


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, Any]:
    """Run ``fn(*args, **kwargs)`` under :class:`FlopCounter` and no_grad; return (FLOPs, result)."""
    counter = FlopCounter()
    with torch.no_grad(), counter:
        result = fn(*args, **kwargs)
    return counter.total, result
