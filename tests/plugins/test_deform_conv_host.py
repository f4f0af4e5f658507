"""ModulatedDeformConv2d: the kernel's element math (compiled for the host) against torchvision."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch
from torchvision.ops import deform_conv2d

from pem_rt.errors import PemError
from plugins import hostref

# (batch, Cin, H, W, Cout, (kh, kw), stride, padding, dilation, groups, deformable_groups)
CASES = [
    pytest.param(2, 8, 9, 11, 6, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1, id="pem-3x3"),
    pytest.param(1, 8, 10, 7, 4, (3, 3), (2, 2), (2, 2), (2, 2), 2, 4, id="stride-dilation-groups-dg4"),
    pytest.param(2, 6, 5, 6, 6, (1, 1), (1, 1), (0, 0), (1, 1), 3, 2, id="1x1-groups3-dg2"),
    pytest.param(1, 4, 8, 9, 8, (3, 2), (1, 2), (1, 0), (2, 1), 1, 2, id="asymmetric"),
    pytest.param(3, 16, 6, 6, 70, (3, 3), (1, 1), (1, 1), (1, 1), 2, 1, id="cout-over-one-tile"),
]


def make_inputs(
    n: int,
    cin: int,
    h: int,
    w: int,
    cout: int,
    k: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    dg: int,
    offset_scale: float = 3.0,
) -> dict[str, torch.Tensor]:
    ho = (h + 2 * padding[0] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1
    taps = k[0] * k[1]
    return {
        "x": torch.randn(n, cin, h, w),
        "offset": torch.randn(n, 2 * dg * taps, ho, wo) * offset_scale,  # many taps land outside the image
        "mask": torch.rand(n, dg * taps, ho, wo),
        "weight": torch.randn(cout, cin // groups, *k),
        "bias": torch.randn(cout),
    }


def torchvision_reference(
    t: dict[str, torch.Tensor], with_bias: bool, **attrs: tuple[int, int]
) -> torch.Tensor:
    return deform_conv2d(
        t["x"], t["offset"], t["weight"], t["bias"] if with_bias else None, mask=t["mask"], **attrs
    )


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize(
    ("n", "cin", "h", "w", "cout", "k", "stride", "padding", "dilation", "groups", "dg"), CASES
)
def test_fp32_equals_torchvision(
    hostlib: ctypes.CDLL,
    with_bias: bool,
    n: int,
    cin: int,
    h: int,
    w: int,
    cout: int,
    k: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    dg: int,
) -> None:
    t = make_inputs(n, cin, h, w, cout, k, stride, padding, dilation, groups, dg)
    ref = torchvision_reference(t, with_bias, stride=stride, padding=padding, dilation=dilation)
    out = hostref.deform_conv2d(
        t["x"].numpy(),
        t["offset"].numpy(),
        t["mask"].numpy(),
        t["weight"].numpy(),
        t["bias"].numpy() if with_bias else None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        deformable_groups=dg,
        lib=hostlib,
    )
    assert out.shape == tuple(ref.shape)
    assert float(ref.abs().max()) > 1.0  # a real signal, not an all-zero output
    err = float(np.abs(out - ref.numpy()).max())
    print(f"max abs error fp32: {err:.2e}")
    assert err <= 1e-4


def test_samples_outside_the_image_read_zero(hostlib: ctypes.CDLL) -> None:
    """Offsets of +-50 px push every tap out of the 6x6 image: only the bias remains."""
    t = make_inputs(1, 4, 6, 6, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1)
    t["offset"] = torch.full_like(t["offset"], 50.0)
    t["offset"][:, ::4] = -50.0
    ref = torchvision_reference(t, True, stride=(1, 1), padding=(1, 1), dilation=(1, 1))
    out = hostref.deform_conv2d(
        *(t[k].numpy() for k in ("x", "offset", "mask", "weight", "bias")), padding=(1, 1), lib=hostlib
    )
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(
        out, np.broadcast_to(t["bias"].numpy()[None, :, None, None], out.shape), atol=1e-6
    )


def test_border_band_matches_torchvision(hostlib: ctypes.CDLL) -> None:
    """Sampling points in (-1, 0) and (H-1, H): the partial-corner cases of the bilinear rule."""
    t = make_inputs(1, 3, 5, 5, 2, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1)
    t["offset"] = (torch.rand_like(t["offset"]) - 0.5) * 2.0  # within one pixel: taps straddle the border
    ref = torchvision_reference(t, False, stride=(1, 1), padding=(1, 1), dilation=(1, 1))
    out = hostref.deform_conv2d(
        *(t[k].numpy() for k in ("x", "offset", "mask", "weight")), padding=(1, 1), lib=hostlib
    )
    assert float(np.abs(out - ref.numpy()).max()) <= 1e-5


@pytest.mark.parametrize(
    ("n", "cin", "h", "w", "cout", "k", "stride", "padding", "dilation", "groups", "dg"), CASES[:3]
)
def test_fp16_path(
    hostlib: ctypes.CDLL,
    n: int,
    cin: int,
    h: int,
    w: int,
    cout: int,
    k: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    dg: int,
) -> None:
    """fp16 tensors, fp32 accumulation: against torchvision in fp32 on the same (fp16-rounded) inputs the
    only extra error is rounding the output to fp16."""
    t = {
        key: v.half().float()
        for key, v in make_inputs(n, cin, h, w, cout, k, stride, padding, dilation, groups, dg).items()
    }
    ref = torchvision_reference(t, True, stride=stride, padding=padding, dilation=dilation).numpy()
    out = hostref.deform_conv2d(
        *(t[key].numpy().astype(np.float16) for key in ("x", "offset", "mask", "weight", "bias")),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        deformable_groups=dg,
        lib=hostlib,
    )
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), ref, rtol=2e-3, atol=2e-3)


def test_rejects_inconsistent_shapes(hostlib: ctypes.CDLL) -> None:
    t = make_inputs(1, 6, 6, 6, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1)
    with pytest.raises(PemError, match="rejected the shape"):
        hostref.deform_conv2d(
            *(t[key].numpy() for key in ("x", "offset", "mask", "weight")),
            padding=(1, 1),
            groups=4,
            lib=hostlib,
        )
