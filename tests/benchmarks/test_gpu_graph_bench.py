"""The GPU benchmark's CPU-side logic: its plan, its stage split and its kernel swap (with the reference
functions in place of the CUDA kernels, which need a GPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.ops import deform_conv2d

from benchmarks.gpu_graph_bench import parse_options, stages, use_kernels
from export.deploy_model import DeployModel
from pem_rt.model_meta import DEFAULT_POSTPROCESS
from training.model import build_model, get_preset
from training.model.prototype_selection import prototype_selection

REPO = Path(__file__).resolve().parents[2]


def test_default_plan_covers_presets_sizes_batches_precisions() -> None:
    options, list_only = parse_options([])
    assert not list_only
    assert len(options.cases) == 3 * 2 * 2 * 2
    assert {(c.size, c.batch, c.precision) for c in options.cases} == {
        (s, b, p) for s in ((512, 1024), (1024, 2048)) for b in (1, 4) for p in ("fp32", "fp16")
    }
    options, _ = parse_options(
        ["--presets", "cityscapes-stdc1", "--postprocess", "exact,fast", "--sizes", "64x128"]
    )
    assert [c.label for c in options.cases][:2] == [
        "cityscapes-stdc1 64x128 b1 fp32 exact",
        "cityscapes-stdc1 64x128 b1 fp32 fast",
    ]


def test_list_runs_without_a_gpu_and_bad_flags_are_one_line() -> None:
    script = REPO / "benchmarks" / "gpu_graph_bench.py"
    run = subprocess.run(
        [sys.executable, str(script), "--list", "--batches", "1"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == f"cityscapes-r50 512x1024 b1 fp32 {DEFAULT_POSTPROCESS}"
    assert len(run.stdout.splitlines()) == 3 * 2 * 2
    bad = subprocess.run(
        [sys.executable, str(script), "--list", "--sizes", "500x1000"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "multiples of 32" in bad.stderr.splitlines()[-1]


@pytest.mark.parametrize("postprocess", ["exact", "fast"])
def test_stages_and_kernel_swap_equal_the_deployable_model(postprocess: str) -> None:
    torch.manual_seed(0)
    model = build_model(get_preset("cityscapes-tiny")).eval()
    deploy = DeployModel(model, "semantic", debug=True, postprocess=postprocess).eval()
    frame = torch.randint(0, 256, (2, 64, 128, 3), dtype=torch.uint8)
    with torch.no_grad():
        want = deploy(frame)
        x = frame
        for step in stages(deploy, (64, 128)):
            x = step(x)
        assert torch.equal(x[0], want[0]) and torch.allclose(x[3], want[3])

        def conv(x: torch.Tensor, o: torch.Tensor, m: torch.Tensor, w: torch.Tensor, p: int) -> torch.Tensor:
            return deform_conv2d(x, o, w, None, padding=(p, p), mask=m)

        assert use_kernels(model, conv, prototype_selection) == 3 + 3  # 3 DCNs, 3 PEM-CA layers
        got = deploy(frame)
    assert (got[0] == want[0]).float().mean() >= 0.999
    torch.testing.assert_close(got[2], want[2], rtol=1e-4, atol=1e-4)
