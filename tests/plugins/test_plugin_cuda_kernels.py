"""The real CUDA kernels (through the plugin library's C launchers) against PyTorch on the GPU, and the
fused-vs-naive micro-benchmark. Marked gpu: `make test` deselects them; they run where CUDA is present."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torchvision.ops import deform_conv2d

from benchmarks import prototype_selection_kernels as bench
from plugins import cuda_ops
from plugins.builder import BuildResult
from training.model.prototype_selection import prototype_indices, prototype_selection

pytestmark = pytest.mark.gpu

DCN_CASES = [
    (2, 8, 9, 11, 6, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1),
    (1, 8, 10, 7, 4, (3, 3), (2, 2), (2, 2), (2, 2), 2, 4),
    (2, 6, 5, 6, 6, (1, 1), (1, 1), (0, 0), (1, 1), 3, 2),
    (1, 4, 8, 9, 8, (3, 2), (1, 2), (1, 0), (2, 1), 1, 2),
    (2, 128, 32, 64, 128, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1),  # the PEM pixel decoder's DCN
]


@pytest.fixture(scope="module")
def lib(plugin_build: BuildResult, cuda_device: Any) -> Any:
    return cuda_ops.library(plugin_build.library)


def dcn_inputs(case: tuple[Any, ...], device: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    n, cin, h, w, cout, k, stride, padding, dilation, groups, dg = case
    ho = (h + 2 * padding[0] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1
    t = {
        "x": torch.randn(n, cin, h, w),
        "offset": torch.randn(n, 2 * dg * k[0] * k[1], ho, wo) * 3,
        "mask": torch.rand(n, dg * k[0] * k[1], ho, wo),
        "weight": torch.randn(cout, cin // groups, *k) / math.sqrt(cin // groups * k[0] * k[1]),
        "bias": torch.randn(cout),
    }
    attrs = {"stride": stride, "padding": padding, "dilation": dilation}
    return {key: v.to(device) for key, v in t.items()}, {**attrs, "groups": groups, "deformable_groups": dg}


@pytest.mark.parametrize("case", DCN_CASES)
def test_deform_conv_fp32(lib: Any, cuda_device: Any, case: tuple[Any, ...]) -> None:
    t, attrs = dcn_inputs(case, cuda_device)
    ref = deform_conv2d(
        t["x"],
        t["offset"],
        t["weight"],
        t["bias"],
        mask=t["mask"],
        stride=attrs["stride"],
        padding=attrs["padding"],
        dilation=attrs["dilation"],
    )
    out = cuda_ops.deform_conv2d(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], lib=lib, **attrs)
    torch.cuda.synchronize()
    err = float((out - ref).abs().max())
    print(f"{case}: max abs error {err:.2e}")
    assert err <= 1e-4


@pytest.mark.parametrize("case", DCN_CASES)
def test_deform_conv_fp16(lib: Any, cuda_device: Any, case: tuple[Any, ...]) -> None:
    t, attrs = dcn_inputs(case, cuda_device)
    t = {key: v.half() for key, v in t.items()}
    ref = deform_conv2d(
        *(t[key].float() for key in ("x", "offset", "weight", "bias")),
        mask=t["mask"].float(),
        stride=attrs["stride"],
        padding=attrs["padding"],
        dilation=attrs["dilation"],
    )
    out = cuda_ops.deform_conv2d(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], lib=lib, **attrs)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), ref, rtol=2e-3, atol=2e-3 * max(1.0, float(ref.abs().max()) / 10))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(
    ("b", "n", "q", "c", "heads"), [(2, 300, 20, 32, 4), (1, 32768, 100, 256, 8), (3, 97, 7, 24, 1)]
)
def test_prototype_selection(
    lib: Any, cuda_device: Any, dtype: torch.dtype, b: int, n: int, q: int, c: int, heads: int
) -> None:
    f = torch.randint(-3, 4, (b, n, c)).float()
    f[:, n // 2 :] = f[:, : n - n // 2]  # exact ties across the token splits
    queries = torch.randint(-3, 4, (b, q, c)).float()
    logits = torch.randn(b, q, n)
    logits[0, min(3, q - 1)] = -1.0  # a fully masked query
    if b > 1:
        logits[1] = -1.0  # an image whose every query is masked
    expected = prototype_indices(f, queries, logits, heads)
    out, indices = cuda_ops.prototype_selection(
        f.to(cuda_device, dtype),
        queries.to(cuda_device, dtype),
        logits.to(cuda_device, dtype),
        heads,
        lib=lib,
    )
    assert torch.equal(indices.long().cpu(), expected)
    assert torch.equal(out.cpu(), prototype_selection(f, queries, logits, heads).to(dtype))


def test_micro_benchmark(lib: Any, cuda_device: Any) -> None:
    for dtype in (torch.float32, torch.float16):
        rows = bench.run_cuda(list(bench.SCALES), repeats=20, dtype=dtype)
        print("\n" + bench.format_rows(rows, f"cuda {torch.cuda.get_device_name()} {dtype}"))
        for row in rows:
            assert row.same_output
            assert row.fused_bytes < row.naive_bytes
