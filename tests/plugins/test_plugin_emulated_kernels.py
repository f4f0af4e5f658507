"""The real CUDA kernels and launchers, compiled for a CPU emulation of CUDA's execution model
(plugins/hosttest/cuda_emulation.h: every block's threads are CPU threads meeting at real barriers),
against PyTorch; and the same code under ThreadSanitizer, which reports shared-memory races."""

from __future__ import annotations

import ctypes
import math
import platform
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.ops import deform_conv2d

from plugins import hostref
from plugins.builder import PLUGIN_DIR
from training.model.prototype_selection import prototype_indices, prototype_selection

CPP = Path(__file__).resolve().parent / "cpp"

DCN_CASES = [
    pytest.param(2, 8, 9, 11, 70, (3, 3), (1, 1), (1, 1), (1, 1), 2, 2, id="two-row-tiles-two-pixel-tiles"),
    pytest.param(1, 8, 10, 7, 4, (3, 3), (2, 2), (2, 2), (2, 2), 2, 4, id="stride-dilation-dg4"),
    pytest.param(1, 32, 16, 16, 64, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1, id="pem-like-K288"),
    pytest.param(2, 6, 5, 6, 6, (1, 1), (1, 1), (0, 0), (1, 1), 3, 2, id="1x1-groups3"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize(
    ("n", "cin", "h", "w", "cout", "k", "stride", "padding", "dilation", "groups", "dg"), DCN_CASES
)
def test_deform_conv_kernel(
    hostlib: ctypes.CDLL,
    dtype: type,
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
    ho = (h + 2 * padding[0] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1
    fan_in = cin // groups * k[0] * k[1]
    t = {
        "x": torch.randn(n, cin, h, w),
        "offset": torch.randn(n, 2 * dg * k[0] * k[1], ho, wo) * 3,
        "mask": torch.rand(n, dg * k[0] * k[1], ho, wo),
        "weight": torch.randn(cout, cin // groups, *k) / math.sqrt(fan_in),
        "bias": torch.randn(cout),
    }
    t = {key: v.to(torch.float16).float() if dtype == np.float16 else v for key, v in t.items()}
    ref = deform_conv2d(
        t["x"],
        t["offset"],
        t["weight"],
        t["bias"],
        mask=t["mask"],
        stride=stride,
        padding=padding,
        dilation=dilation,
    ).numpy()
    out = hostref.emulated_deform_conv2d(
        *(t[key].numpy().astype(dtype) for key in ("x", "offset", "mask", "weight", "bias")),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        deformable_groups=dg,
        lib=hostlib,
    )
    assert out.dtype == dtype
    # the element math in a plain loop: bit-identical up to the kernel's tiled (same-order) accumulation
    loop = hostref.deform_conv2d(
        *(t[key].numpy().astype(dtype) for key in ("x", "offset", "mask", "weight", "bias")),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        deformable_groups=dg,
        lib=hostlib,
    )
    np.testing.assert_array_equal(out, loop)
    err = float(np.abs(out.astype(np.float32) - ref).max())
    print(f"max abs error {np.dtype(dtype).name}: {err:.2e}")
    assert err <= (1e-4 if dtype == np.float32 else 2e-3 * max(1.0, float(np.abs(ref).max())))


@pytest.mark.parametrize("sm_count", [1, 28, 132])
@pytest.mark.parametrize(
    ("dtype", "mask_dtype"), [(np.float32, np.float32), (np.float16, np.float16), (np.float16, np.float32)]
)
@pytest.mark.parametrize(
    ("channels", "heads"),
    [(32, 4), (64, 2), (256, 8)],
    ids=["depth8-generic", "depth32-fast", "pem-256x8-fast"],
)
def test_prototype_selection_kernels(
    hostlib: ctypes.CDLL, sm_count: int, dtype: type, mask_dtype: type, channels: int, heads: int
) -> None:
    """Head width 32 takes the register/float4 fast path, other widths the generic one; both equal
    PyTorch, ties (first index), a fully masked query and the empty-image rule included."""
    features = torch.randint(-3, 4, (3, 299, channels)).float()  # 299: chunks that end mid-quad
    features[:, 200:] = features[:, 20:119]  # exact ties in later token ranges
    queries = torch.randint(-3, 4, (3, 20, channels)).float()
    logits = torch.randn(3, 20, 299).half().float()
    logits[0, 3] = -1.0  # a fully masked query: token 0
    logits[1] = -1.0  # every query of image 1 masked: mask cleared
    prototypes, indices = hostref.emulated_prototype_selection(
        features.numpy().astype(dtype),
        queries.numpy().astype(dtype),
        logits.numpy().astype(mask_dtype),
        heads,
        sm_count=sm_count,
        lib=hostlib,
    )
    np.testing.assert_array_equal(indices, prototype_indices(features, queries, logits, heads).numpy())
    np.testing.assert_array_equal(
        prototypes, prototype_selection(features, queries, logits, heads).numpy().astype(dtype)
    )
    assert (indices[0, :, 3] == 0).all()


def test_prototype_selection_many_heads(hostlib: ctypes.CDLL) -> None:
    """heads > 128: one query per block and several (head, query) pairs per thread."""
    features = torch.randint(-3, 4, (1, 70, 256)).float()
    queries = torch.randint(-3, 4, (1, 3, 256)).float()
    logits = torch.randn(1, 3, 70)
    _, indices = hostref.emulated_prototype_selection(
        features.numpy(), queries.numpy(), logits.numpy(), 256, lib=hostlib
    )
    np.testing.assert_array_equal(indices, prototype_indices(features, queries, logits, 256).numpy())


def test_no_shared_memory_races(tmp_path: Path) -> None:
    binary = tmp_path / "race_check"
    sources = [CPP / "race_check.cpp"] + [
        PLUGIN_DIR / "hosttest" / name
        for name in (
            "emulated_deform_conv.cpp",
            "emulated_prototype_selection.cpp",
            "cuda_runtime_emulation.cpp",
        )
    ]
    cmd = ["g++", "-std=c++20", "-O1", "-g", "-fsanitize=thread", "-Wno-unknown-pragmas", f"-I{PLUGIN_DIR}"]
    cmd += ["-I/usr/local/cuda/include", *map(str, sources), "-o", str(binary), "-lpthread"]
    subprocess.run(cmd, check=True, capture_output=True)
    result = subprocess.run([str(binary)], capture_output=True, text=True, check=False)
    if "unexpected memory mapping" in result.stderr:  # ThreadSanitizer vs. high ASLR entropy: no ASLR
        cmd = ["setarch", platform.machine(), "-R", str(binary)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    print(result.stdout, result.stderr[-3000:])
    assert "ThreadSanitizer" not in result.stderr
    assert result.returncode == 0 and "deform conv 0, prototype selection 0 0" in result.stdout
