"""Letterbox placement and the mapping of label maps back to the frame."""

from __future__ import annotations

import numpy as np
import pytest

from pem_rt.errors import PemError
from pem_rt.letterbox import Letterbox, place


@pytest.mark.parametrize(
    ("frame", "want"),
    [
        ((64, 128), (0, 0, 64, 128)),  # identity
        ((720, 1280), (0, 7, 64, 114)),  # wider model than 16:9: bars left and right
        ((128, 128), (0, 32, 64, 64)),  # square: bars left and right
        ((30, 120), (16, 0, 32, 128)),  # 4:1, scaled up to the full width: bars top and bottom
        ((32, 256), (24, 0, 16, 128)),  # 8:1, scaled down to the full width: bars top and bottom
    ],
)
def test_placement(frame: tuple[int, int], want: tuple[int, int, int, int]) -> None:
    p = place(frame, (64, 128), "letterbox")
    assert (p.top, p.left, p.height, p.width) == want
    assert p.top + p.height <= 64 and p.left + p.width <= 128


def test_apply_pads_with_the_given_colour_and_unmap_inverts_the_placement() -> None:
    lb = Letterbox((64, 128), "letterbox", (104, 116, 124))
    frame = np.full((128, 128, 3), 200, np.uint8)
    image, p = lb.apply(frame)
    assert image.shape == (64, 128, 3)
    assert (image[:, : p.left] == (104, 116, 124)).all() and (
        image[:, p.left + p.width :] == (104, 116, 124)
    ).all()
    assert (image[:, p.left : p.left + p.width] == 200).all()
    model_map = np.zeros((64, 128), np.uint8)
    model_map[:, p.left : p.left + p.width] = np.arange(p.width, dtype=np.uint8)[None]  # content columns
    back = Letterbox.unmap(model_map, p)
    assert back.shape == (128, 128)
    assert (
        back[:, ::2] == np.arange(64, dtype=np.uint8)[None]
    ).all()  # each content column covers 2 frame columns
    assert (back[:, 1::2] == np.arange(64, dtype=np.uint8)[None]).all()


def test_identity_passes_the_frame_through_and_int32_maps_unmap() -> None:
    lb = Letterbox((64, 128))
    frame = np.random.default_rng(0).integers(0, 255, (64, 128, 3), dtype=np.uint8)
    image, p = lb.apply(frame)
    assert image is frame and p.identity
    ids = np.arange(64 * 64, dtype=np.int32).reshape(64, 64) * 1000
    q = place((128, 128), (64, 128), "letterbox")
    full = np.zeros((64, 128), np.int32)
    full[:, q.left : q.left + q.width] = ids
    assert Letterbox.unmap(full, q)[::2, ::2].tolist() == ids.tolist()


def test_stretch_and_none() -> None:
    p = place((100, 100), (64, 128), "stretch")
    assert (p.top, p.left, p.height, p.width) == (0, 0, 64, 128)
    with pytest.raises(PemError, match="does not match the model input 64x128"):
        place((100, 100), (64, 128), "none")
    with pytest.raises(PemError, match="BGR uint8"):
        Letterbox((64, 128)).apply(np.zeros((64, 128), np.uint8))
