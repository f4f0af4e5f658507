"""QAT fake quantisation (training/qat.py) on the tiny model: ranges from each method, and a checkpoint's
quantizers restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.model import build_model, get_preset
from training.qat import QatConfig, quantize_for_training, restore_quantizers


def _frames(n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (64, 128, 3), dtype=np.uint8) for _ in range(n)]


def _input_amax(model: torch.nn.Module) -> dict[str, float]:
    from modelopt.torch.quantization.nn import TensorQuantizer

    return {
        name: float(m.amax)
        for name, m in model.named_modules()
        if isinstance(m, TensorQuantizer) and name.endswith("input_quantizer") and m.amax is not None
    }


@pytest.fixture(scope="module")
def max_ranges() -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(get_preset("cityscapes-tiny"))
    line = quantize_for_training(model, QatConfig("max"), _frames())
    assert line.startswith("QAT: ") and "from max on 2 calibration frames" in line
    return _input_amax(model)


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_methods_clip_below_max(method: str, max_ranges: dict[str, float]) -> None:
    torch.manual_seed(0)
    model = build_model(get_preset("cityscapes-tiny"))
    model.train()
    quantize_for_training(model, QatConfig(method, percentile=99.0), _frames())
    assert model.training  # calibration ran in eval mode and gave the mode back
    ranges = _input_amax(model)
    assert set(ranges) == set(max_ranges) and len(ranges) > 40
    assert all(0 < ranges[k] <= max_ranges[k] * 1.001 for k in ranges)
    # outliers clipped (entropy: 18 of 90 on these frames, as ModelOpt's own search gives them)
    assert sum(ranges[k] < 0.9 * max_ranges[k] for k in ranges) > len(ranges) // 6


def test_checkpoint_quantizers_are_restored() -> None:
    torch.manual_seed(0)
    trained = build_model(get_preset("cityscapes-tiny")).eval()
    quantize_for_training(trained, QatConfig("max"), _frames(1))
    state = trained.state_dict()
    assert any(k.endswith("input_quantizer._amax") for k in state)
    fresh = build_model(get_preset("cityscapes-tiny")).eval()
    restore_quantizers(fresh)
    fresh.load_state_dict(state)  # strict: the same quantizers, their ranges from the checkpoint
    assert _input_amax(fresh) == _input_amax(trained)
    x = torch.from_numpy(_frames(1)[0]).permute(2, 0, 1)[None]
    with torch.no_grad():
        a = trained(trained.normalize(x), all_predictions=False).mask_logits
        b = fresh(fresh.normalize(x), all_predictions=False).mask_logits
    torch.testing.assert_close(a, b)


def test_quantizing_is_quiet_and_the_range_search_shows_progress() -> None:
    """A fresh process (ModelOpt's first import is where its notices come from): nothing on stderr but
    the progress bar of the percentile range search."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from training.model import build_model, get_preset\n"
        "from training.qat import QatConfig, quantize_for_training\n"
        "model = build_model(get_preset('cityscapes-tiny'))\n"
        "frame = np.zeros((64, 64, 3), np.uint8)\n"
        "quantize_for_training(model, QatConfig('max'), [frame])\n"
        "import sys; sys.stderr.write('--\\n')\n"
        "quantize_for_training(build_model(get_preset('cityscapes-tiny')), QatConfig('percentile'), "
        "[frame], progress=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    quiet, bar = done.stderr.split("--\n")
    assert quiet == "" and done.stdout == ""
    assert "QAT percentile ranges" in bar and "Warning" not in bar
