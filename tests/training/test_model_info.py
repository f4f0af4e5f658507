"""model-info: parameter counts and GFLOPs against the paper and the measured reference costs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.model import get_preset
from training.model_info import measure

# (preset, size) -> GFLOPs measured on the reference code with fvcore, which skips deform conv
# (shared/PEM_REFERENCE.md), and the paper's figure at that size.
REFERENCE = {
    ("cityscapes-r50", (1024, 2048)): 236.0,
    ("cityscapes-stdc1", (1024, 2048)): 90.7,
    ("cityscapes-stdc2", (1024, 2048)): 117.2,
    ("ade20k-r50", (512, 512)): 34.0,
}
PAPER = {
    ("cityscapes-r50", (1024, 2048)): 240.0,
    ("ade20k-r50", (512, 683)): 46.9,  # the paper's "512x512" ADE20K figure is at short side 512
    ("ade20k-stdc1", (512, 512)): 16.0,
}


@pytest.mark.parametrize(("key", "gflops"), list(REFERENCE.items()))
def test_gflops_match_reference_measurement(key: tuple[str, tuple[int, int]], gflops: float) -> None:
    info = measure(get_preset(key[0]), key[1])
    assert abs((info.gflops - info.deform_conv_gflops) / gflops - 1) < 0.02


@pytest.mark.parametrize(("key", "gflops"), list(PAPER.items()))
def test_gflops_within_five_percent_of_paper(key: tuple[str, tuple[int, int]], gflops: float) -> None:
    info = measure(get_preset(key[0]), key[1])
    assert abs(info.gflops / gflops - 1) < 0.05
    assert abs((info.gflops - info.deform_conv_gflops) / gflops - 1) < 0.05


def test_deform_conv_is_counted() -> None:
    info = measure(get_preset("cityscapes-r50"), (1024, 2048))
    # three 128->128 3x3 DCNs at strides 32, 16, 8 of 1024x2048
    assert info.deform_conv_gflops == pytest.approx(128 * 128 * 9 * (32 * 64 + 64 * 128 + 128 * 256) / 1e9)
    assert info.stages[0].gflops == pytest.approx(171.8, rel=0.01)  # backbone, as measured


def test_masked_attention_ablation_costs_more() -> None:
    from training.model import with_ablation

    pem = measure(get_preset("cityscapes-r50"), (1024, 2048))
    masked = measure(with_ablation(get_preset("cityscapes-r50"), cross_attention="masked"), (1024, 2048))
    assert masked.stages[2].gflops > pem.stages[2].gflops


def test_cli_prints_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "info.json"
    run = subprocess.run(
        [sys.executable, "training/model_info.py", "--preset", "cityscapes-stdc1", "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "16,957,829" in run.stdout and "paper: 17.0M" in run.stdout
    assert run.stdout.strip().endswith("model-info: PASSED")
    data = json.loads(out.read_text())
    assert data["params"] == 16_957_829 and 95 < data["gflops"] < 99


def test_cli_bad_preset_is_one_line() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pem_rt.cli", "model-info", "--preset", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.strip().count("\n") == 0 and run.stderr.startswith("error: unknown preset 'nope'")
    assert "Traceback" not in run.stderr


def test_fast_postprocessing_is_counted_at_mask_resolution() -> None:
    """fast combines the class scores at 1/4 resolution (16x fewer pixels; its edge cells depend on the
    image and are not counted), whatever the number of classes."""
    exact = measure(get_preset("cityscapes-r50"), (1024, 2048), "exact")
    fast = measure(get_preset("cityscapes-r50"), (1024, 2048), "fast")
    assert exact.stages[3].gflops == pytest.approx(4.8, rel=0.05)
    assert fast.stages[3].gflops < exact.stages[3].gflops / 5
    assert fast.stages[:3] == exact.stages[:3] and fast.postprocess == "fast"
    ade = [measure(get_preset("ade20k-r50"), (512, 512), m).stages[3].gflops for m in ("exact", "fast")]
    assert ade[1] == pytest.approx(ade[0] / 16, rel=0.15)
