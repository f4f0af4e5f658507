"""Fuzz targets: every parser of a file a user may hand us, fed arbitrary bytes.

Each target takes the bytes of one file and parses them the way the command does; the only exception
allowed out is the project's :class:`PemError` (a one-line message), anything else is a crash. ``SEEDS``
gives each target valid files to start mutating from (atheris/libFuzzer finds the rest).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pem_rt.errors import PemError

# the parsers read files: keep them in memory-backed storage where there is some (file creation on a busy
# disk costs milliseconds, 10^6 times)
_TMP = Path(tempfile.mkdtemp(prefix="pem-fuzz-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))


def _file(name: str, data: bytes) -> Path:
    path = _TMP / name
    path.write_bytes(data)
    return path


def sidecar(data: bytes) -> None:
    from pem_rt.engine_meta import parse_sidecar

    parse_sidecar(data.decode("utf-8", "replace"), "model.engine.json")


def onnx_metadata(data: bytes) -> None:
    from pem_rt.lineage import Lineage
    from pem_rt.model_meta import ModelMeta
    from pem_rt.onnx_props import props_from_bytes

    props = props_from_bytes(data, "model.onnx")
    Lineage.from_props(props, "model.onnx")
    ModelMeta.from_props(props, "model.onnx")


def calibration_cache(data: bytes) -> None:
    from calibration.cache import parse_cache

    parse_cache(data.decode("utf-8", "replace"))


def annotations(data: bytes) -> None:
    from training.data.coco_panoptic import read_panoptic_json

    images = _TMP / "images"
    if not images.is_dir():
        images.mkdir()
        (images / "a.jpg").touch()
    read_panoptic_json(_file("panoptic.json", data), _TMP, images, {1: 0, 2: 1}, "COCO panoptic")


def sources_file(data: bytes) -> None:
    from runtime.stream import read_sources_file

    read_sources_file(_file("sources.txt", data))


def checkpoint(data: bytes) -> None:
    from training.checkpoint import load_checkpoint

    load_checkpoint(_file("model.pt", data))


def checkpoint_content(data: bytes) -> None:
    """What is inside a well-formed checkpoint file, fuzzed as JSON (mutating the zip container, as
    :func:`checkpoint` does, seldom gets a payload through): its config fields and weights of any type.
    ``{"__tensor__": [shape]}`` stands for a tensor of zeros."""
    import torch

    from training.checkpoint import load_checkpoint

    try:
        payload = json.loads(data.decode("utf-8", "replace"), object_hook=_tensor_hook)
        buf = io.BytesIO()
        torch.save(payload, buf)
    except (ValueError, RecursionError):
        return  # not a payload torch.save can write: :func:`checkpoint` covers such files
    load_checkpoint(_file("content.pt", buf.getvalue()))


def _tensor_hook(obj: dict[str, Any]) -> Any:
    import torch

    shape = obj.get("__tensor__")
    if len(obj) == 1 and isinstance(shape, list) and all(type(n) is int and 0 <= n <= 8 for n in shape[:3]):
        return torch.zeros(shape[:3])
    return obj


TARGETS: dict[str, Callable[[bytes], None]] = {
    "sidecar": sidecar,
    "onnx_metadata": onnx_metadata,
    "calibration_cache": calibration_cache,
    "annotations": annotations,
    "sources_file": sources_file,
    "checkpoint": checkpoint,
    "checkpoint_content": checkpoint_content,
}
# what each target instruments for coverage feedback (the code that parses, not torch or json's C code)
INSTRUMENT = {
    "sidecar": ["pem_rt.engine_meta", "pem_rt.model_meta"],
    "onnx_metadata": ["pem_rt.onnx_props", "pem_rt.lineage", "pem_rt.model_meta"],
    "calibration_cache": ["calibration.cache"],
    "annotations": ["training.data.coco_panoptic"],
    "sources_file": ["runtime.stream"],
    "checkpoint": ["training.checkpoint", "training.model.config", "training.dataset_meta"],
    "checkpoint_content": ["training.checkpoint", "training.model.config", "training.dataset_meta"],
}


def run_one(name: str, data: bytes) -> None:
    """One input through a target: returns, or raises PemError; anything else propagates (a crash)."""
    with contextlib.suppress(PemError):
        TARGETS[name](data)


def seeds(name: str) -> list[bytes]:
    """Valid inputs of target ``name`` (and a few near misses) to start from."""
    return _SEEDS[name]()


def _sidecar_seeds() -> list[bytes]:
    from pem_rt.engine_meta import EngineSidecar, TensorInfo

    sc = EngineSidecar(
        model=_meta(),
        precision="fp16",
        flavour="tensorrt_rtx",
        trt_version="1.7",
        targets=("sm86",),
        plugin_sha256="0" * 64,
        inputs=(TensorInfo("image", "uint8", (1, 64, 128, 3)),),
        outputs=(TensorInfo("labels", "uint8", (1, 64, 128)),),
        onnx_sha256="1" * 64,
        build_command="pem build-engine --fp16",
        layers=({"name": "a", "type": "PLUGIN_V3", "dtypes": "float16"},),
        batch_profile=(1, 2, 4),
        engine_size=10,
        engine_sha256="2" * 64,
    )
    return [json.dumps(sc.to_json()).encode(), b"{}", b"[]"]


def _meta():  # type: ignore[no-untyped-def]
    from pem_rt.model_meta import ModelMeta

    return ModelMeta(
        name="cityscapes-tiny", task="semantic", classes=("road", "car"), palette=((1, 2, 3), (4, 5, 6)),
        thing_ids=(1,), input_height=64, input_width=128, batch=1, num_queries=10,
        object_mask_threshold=0.8, overlap_threshold=0.8, pixel_mean=(1.0, 2.0, 3.0),
        pixel_std=(1.0, 1.0, 1.0), opset=19, exporter="fuzz",
    )  # fmt: skip


def _onnx_seeds() -> list[bytes]:
    import onnx
    from onnx import TensorProto, helper

    from pem_rt.lineage import REFERENCE, Lineage, stamp

    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["labels"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 64, 128, 3])],
        [helper.make_tensor_value_info("labels", TensorProto.UINT8, [1, 64, 128, 3])],
    )
    model = helper.make_model(graph)
    for key, value in _meta().to_props().items():
        model.metadata_props.add(key=key, value=value)
    stamp(model, Lineage(REFERENCE, "3" * 64))
    return [model.SerializeToString(), onnx.helper.make_model(graph).SerializeToString()]


def _cache_seeds() -> list[bytes]:
    from calibration.cache import CalibrationKey, write_cache

    key = CalibrationKey("4" * 64, (64, 128), "percentile", 99.99, 4, "5" * 64)
    path = _TMP / "seed.calib"
    write_cache(path, key, {"a/conv": 3.5, "b:0": 0.25, "c": 1e-3})
    legacy = b'PEM-RT-calibration-1 {"method": "max"}\na: 3c23d70a\n'
    return [path.read_bytes(), legacy]


def _annotation_seeds() -> list[bytes]:
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [
            {
                "image_id": 1,
                "file_name": "a.png",
                "segments_info": [{"id": 5, "category_id": 1, "iscrowd": 0}],
            }
        ],
    }
    return [json.dumps(doc).encode()]


def _sources_seeds() -> list[bytes]:
    return [b"# cameras\ncamera:0\nrtsp://cam1/live  # the door\n\nsynthetic@2\n", b"camera:x\n"]


def _checkpoint_seeds() -> list[bytes]:
    import torch

    from training.checkpoint import FORMAT

    buf = io.BytesIO()
    torch.save({"format": FORMAT, "config": {"name": "x"}, "model": {"w": torch.zeros(2)}}, buf)
    plain = io.BytesIO()
    torch.save({"w": torch.ones(3)}, plain)
    return [buf.getvalue(), plain.getvalue()]


def _checkpoint_content_seeds() -> list[bytes]:
    from training.checkpoint import FORMAT
    from training.model.config import get_preset

    weights = {"pixel_decoder.w": {"__tensor__": [2, 3]}, "decoder.b": {"__tensor__": [4]}}
    full = {"format": FORMAT, "config": get_preset("cityscapes-tiny").to_dict(), "model": weights, "step": 7}
    panoptic = {"format": FORMAT, "config": get_preset("coco-panoptic-tiny").to_dict(), "model": {}}
    return [json.dumps(full).encode(), json.dumps(panoptic).encode(), b'{"format": "pem-rt/1"}']


_SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "sidecar": _sidecar_seeds,
    "onnx_metadata": _onnx_seeds,
    "calibration_cache": _cache_seeds,
    "annotations": _annotation_seeds,
    "sources_file": _sources_seeds,
    "checkpoint": _checkpoint_seeds,
    "checkpoint_content": _checkpoint_content_seeds,
}


def write_seeds(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(seeds(name)):
        (folder / f"seed{i}").write_bytes(data)
    return folder
