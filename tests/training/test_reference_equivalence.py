"""Our PEM equals the PEM reference implementation, number for number.

``tests/fixtures/pem_reference_tiny.pt`` was produced by running the reference modules of
github.com/NiccoloCavagnero/PEM (STDCNet, PEM_Pixel_Decoder, MultiScaleMaskedTransformerDecoder with
PEM_CA; detectron2's layers replaced by plain torch equivalents, ModulatedDeformConv by torchvision's
deform_conv2d with the same offset layout) in eval mode on random weights: every parameter, BN statistic
and DCN offset conv randomised, mask embeddings zero-sum so attention masks mix masked, partly masked and
fully masked queries. It holds the official-layout state dict (STDC aliases included), the input and all
7 predictions. No reference code is in this repository; only its outputs are.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.dataset_meta import CITYSCAPES
from training.model import ModelConfig, build_model
from training.model.config import BackboneConfig, DecoderConfig, PixelDecoderConfig
from training.model.weights import import_official_state

FIXTURE = Path(__file__).parent.parent / "fixtures" / "pem_reference_tiny.pt"


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def _model(reference: dict) -> torch.nn.Module:
    d = reference["dims"]
    cfg = ModelConfig(
        name="reference-tiny",
        dataset=CITYSCAPES,
        backbone=BackboneConfig("stdc1", stdc_base=d["base"]),
        pixel_decoder=PixelDecoderConfig(conv_dim=d["conv"], mask_dim=d["mask"]),
        decoder=DecoderConfig(d["hidden"], d["heads"], d["queries"], d["layers"], d["ffn"]),
    )
    model = build_model(cfg).eval()
    report = import_official_state(model, reference["state_dict"])
    assert report.missing == []
    assert all(k.startswith("backbone.x") for k in report.unexpected)  # only STDC aliases left over
    return model


def test_every_prediction_equals_reference(reference: dict) -> None:
    model = _model(reference)
    with torch.no_grad():
        out = model(reference["input"], all_predictions=True)
    preds = [*out.aux, out]
    assert len(preds) == len(reference["mask_logits"]) == 7
    for i, p in enumerate(preds):
        got_cls = p.class_logits
        got_mask = p.mask_logits
        torch.testing.assert_close(
            got_cls, reference["class_logits"][i], atol=1e-4, rtol=1e-4, msg=f"pred {i}"
        )
        torch.testing.assert_close(
            got_mask, reference["mask_logits"][i], atol=1e-4, rtol=1e-4, msg=f"pred {i}"
        )


def test_inference_path_equals_reference(reference: dict) -> None:
    model = _model(reference)
    with torch.no_grad():
        out = model(reference["input"])
    torch.testing.assert_close(out.mask_logits, reference["mask_logits"][-1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.class_logits, reference["class_logits"][-1], atol=1e-4, rtol=1e-4)
