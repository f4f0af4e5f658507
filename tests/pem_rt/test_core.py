"""The torch-free core's shared contracts: ONNX metadata, sizes, image suffixes, segments, predictions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pem_rt.errors import PemError
from pem_rt.images import IMAGE_SUFFIXES, is_image
from pem_rt.model_meta import ModelMeta
from pem_rt.onnx_props import read_metadata_props
from pem_rt.predictions import prediction_paths, write_prediction
from pem_rt.segments import VOID, Segment, id_to_rgb, rgb_to_id
from pem_rt.sizes import parse_size, size_arg

META = ModelMeta(
    name="cityscapes-tiny",
    task="semantic",
    classes=("road", "sky"),
    palette=((128, 64, 128), (70, 130, 180)),
    thing_ids=(),
    input_height=64,
    input_width=128,
    batch=1,
    num_queries=10,
    object_mask_threshold=0.8,
    overlap_threshold=0.8,
    pixel_mean=(123.675, 116.28, 103.53),
    pixel_std=(58.395, 57.12, 57.375),
    opset=19,
    exporter="test",
)


def _onnx_file(path: Path, props: dict[str, str], weight_mb: int = 2) -> Path:
    """A real ONNX model (one Add with a large initializer) carrying ``props`` as metadata."""
    weight = numpy_helper.from_array(np.arange(weight_mb << 18, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [weight_mb << 18])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [weight_mb << 18])],
        [weight],
    )
    model = helper.make_model(graph, producer_name="pem-rt-test", doc_string="a doc string")
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def test_metadata_props_are_what_onnx_reads(tmp_path: Path) -> None:
    props = {**META.to_props(), "unicode": "Straße ✓", "empty": ""}
    path = _onnx_file(tmp_path / "m.onnx", props)
    want = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert read_metadata_props(path) == want == props


def test_model_meta_round_trips_through_an_onnx_file(tmp_path: Path) -> None:
    path = _onnx_file(tmp_path / "m.onnx", META.to_props())
    assert ModelMeta.from_onnx(path) == META


@pytest.mark.parametrize("content", ["missing", "garbage", "empty", "no_metadata", "folder"])
def test_unreadable_onnx_files_are_one_line_errors(tmp_path: Path, content: str) -> None:
    path = tmp_path / "m.onnx"
    if content == "garbage":
        path.write_bytes(b"\xff\xff\xff\xff not protobuf" * 50)
    elif content == "empty":
        path.write_bytes(b"")
    elif content == "no_metadata":
        _onnx_file(path, {}, weight_mb=1)
    elif content == "folder":
        path.mkdir()
    with pytest.raises(PemError) as e:
        ModelMeta.from_onnx(path, "--onnx")
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    expected = {"missing": "does not exist", "no_metadata": "no PEM-RT metadata"}.get(
        content, "not a readable ONNX"
    )
    assert expected in message


def test_sizes() -> None:
    assert parse_size("512x1024") == (512, 1024) and parse_size("64X128") == (64, 128)
    with pytest.raises(PemError, match=r"^--size: 'big' is not HxW"):
        parse_size("big", "--size")
    with pytest.raises(PemError, match=r"12x12 is too small .*at least 16x16"):
        parse_size("12x12", "--source synthetic:HxW", minimum=16)
    with pytest.raises(argparse.ArgumentTypeError, match=r"^'0x5' is not|too small"):
        size_arg("0x5")
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=size_arg)
    assert parser.parse_args(["--size", "32x64"]).size == (32, 64)


def test_image_suffixes_are_one_list_for_every_reader(tmp_path: Path) -> None:
    assert is_image(Path("a.JPG")) and is_image(Path("b.ppm")) and not is_image(Path("c.txt"))
    assert len(set(IMAGE_SUFFIXES)) == len(IMAGE_SUFFIXES)
    import cv2

    from calibration.frames import read_frames

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, suffix in enumerate(
        (".ppm", ".bmp", ".PNG")
    ):  # `--source` took .ppm; `--calib-data` used to skip it
        cv2.imwrite(str(folder / f"{i}{suffix}"), np.full((20, 30, 3), 40 * i, np.uint8))
    assert read_frames(folder, (32, 64), 8).shape == (3, 32, 64, 3)


def test_segment_ids_round_trip_through_rgb() -> None:
    ids = np.array([[0, 1, 255], [256, 65536 + 7, 1_000_001]], dtype=np.int32)
    rgb = id_to_rgb(ids)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert (rgb_to_id(rgb) == ids).all()


def test_prediction_files_are_what_the_evaluator_reads(tmp_path: Path) -> None:
    from training.evaluator import load_prediction

    labels = np.array([[0, 1], [VOID, 1]], dtype=np.uint8)
    panoptic = np.array([[1, 2], [0, 2]], dtype=np.int32)
    segments = [Segment(1, 0, False), Segment(2, 1, True)]
    write_prediction(tmp_path, "img", labels, panoptic, segments)
    semantic_png, panoptic_png, info_json = prediction_paths(tmp_path, "img")
    assert semantic_png.is_file() and panoptic_png.is_file()
    assert json.loads(info_json.read_text())["segments_info"][1] == {
        "id": 2,
        "category_id": 1,
        "isthing": True,
    }
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left behind
    pred = load_prediction(tmp_path, "img", panoptic=True, num_classes=2)
    assert (pred.semantic == labels).all() and (pred.panoptic == panoptic).all()
    assert pred.segments == segments


def test_an_unwritable_prediction_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PemError) as e:
        write_prediction(blocker / "sub", "img", np.zeros((2, 2), np.uint8), what="--save-masks")
    assert str(e.value).startswith("--save-masks: cannot write") and "\n" not in str(e.value)
