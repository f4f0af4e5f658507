"""`pem triton-repo`: model repositories for ONNX graphs and engines whose config.pbtxt parses with
tritonclient's ModelConfig protobuf and matches the model's I/O; bad input is one clear line."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export.build_engine import main as build_engine
from export.triton_repo import main
from pem_rt.engine_meta import read_sidecar, write_sidecar
from pem_rt.model_meta import ModelMeta

Exported = Callable[..., tuple[object, Path]]


def parse(folder: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def io(config: model_config_pb2.ModelConfig) -> list[tuple[str, str, list[int]]]:
    items = [*config.input, *config.output]
    return [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in items]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error(code: int, out: str, err: str, phrase: str) -> None:
    assert code == 1 and "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and phrase in err, err
    assert out.strip().splitlines()[-1] == "triton-repo: FAILED"


@pytest.mark.parametrize("task", ["semantic", "panoptic"])
def test_onnx_repository(
    exported: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str
) -> None:
    _, onnx_path = exported("cityscapes-tiny", task=task, batch=0, debug=False)
    repo = tmp_path / "models"
    code, out, err = run([onnx_path, "--repo", repo, "--max-batch", 4, "--instance-kind", "cpu"], capsys)
    assert code == 0, err
    folder = repo / f"pem_cityscapes_tiny_{task}"
    assert f"wrote {folder} (onnxruntime_onnx, max_batch_size 4)" in out
    assert (folder / "1" / "model.onnx").read_bytes() == onnx_path.read_bytes()
    config = parse(folder)
    assert config.name == folder.name and config.platform == "onnxruntime_onnx" and config.max_batch_size == 4
    image = ("image", "TYPE_UINT8", [64, 128, 3])
    if task == "semantic":
        assert io(config) == [image, ("labels", "TYPE_UINT8", [64, 128])]
    else:
        assert io(config)[0] == image and [t[0] for t in io(config)[1:]] == [
            "query_labels", "query_scores", "winner", "winner_area", "mask_area"
        ]  # fmt: skip
        assert io(config)[3] == ("winner", "TYPE_UINT8", [64, 128])
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    meta = ModelMeta.from_props({k: v.string_value for k, v in config.parameters.items()}, "config")
    assert (meta.name, meta.task, meta.input_height, meta.input_width, meta.batch) == (
        "cityscapes-tiny", task, 64, 128, 0
    )  # fmt: skip
    readme = (folder / "README.md").read_text()
    assert "tritonserver --model-repository=/models" in readme and f"/{folder.name} " in readme

    code, out, err = run([onnx_path, "--repo", repo], capsys)
    one_error(code, out, err, "exists; pass --force")
    code, out, err = run([onnx_path, "--repo", repo, "--force", "--max-batch", 2], capsys)
    assert code == 0, err
    assert parse(folder).max_batch_size == 2 and not list(repo.glob(".*"))


def test_engine_repository(
    exported: Exported, plugin_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real dynamic-batch engine (TensorRT-RTX, built ahead of time): its profile lands in the sidecar.
    Triton's TensorRT backend loads classic TensorRT engines only, so the RTX engine is refused with the
    fix; classic TensorRT cannot be installed here, so the tensorrt_plan config is written from the same
    sidecar marked as a classic TensorRT build."""
    _, onnx_path = exported("cityscapes-tiny", batch=0, debug=False)
    engine = tmp_path / "m.engine"
    args = ["--fp32", "--onnx", onnx_path, "--target", "sm86", "--plugins", plugin_library, "--out", engine]
    assert build_engine([str(a) for a in [*args, "--batch", "1,2,4"]]) == 0
    capsys.readouterr()
    sidecar = read_sidecar(engine)
    assert sidecar.batch_profile == (1, 2, 4) and sidecar.inputs[0].shape == (-1, 64, 128, 3)

    repo = tmp_path / "models"
    one_error(*run([engine, "--repo", repo], capsys), "Triton's tensorrt_plan backend loads classic TensorRT")

    write_sidecar(engine, dataclasses.replace(sidecar, flavour="tensorrt", trt_version="10.13.3"))
    code, out, err = run([engine, "--repo", repo, "--name", "pem", "--plugins", plugin_library], capsys)
    assert code == 0, err
    config = parse(repo / "pem")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 4
    assert io(config) == [("image", "TYPE_UINT8", [64, 128, 3]), ("labels", "TYPE_UINT8", [64, 128])]
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert config.parameters["pem.tensorrt_version"].string_value == "10.13.3"
    assert config.parameters["pem.plugin_library"].string_value == "libpem_plugins.so"
    assert (repo / "pem" / "1" / "model.plan").read_bytes() == engine.read_bytes()
    assert (repo / "pem" / "libpem_plugins.so").read_bytes() == plugin_library.read_bytes()
    readme = (repo / "pem" / "README.md").read_text()
    assert "--backend-config=tensorrt,plugins=/models/pem/libpem_plugins.so" in readme
    assert "LD_PRELOAD=/models/pem/libpem_plugins.so" in readme and "TensorRT 10.13.3" in readme
    # the loading path the README names: the server's TensorRT is loaded, then the library is dlopen'ed
    check = (
        "import ctypes, sys, tensorrt_rtx as trt; ctypes.CDLL(sys.argv[1]); r = trt.get_plugin_registry(); "
        "print(all(r.get_creator(n, '1', 'pem') for n in ('ModulatedDeformConv2d', 'PrototypeSelection')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check, str(repo / "pem" / "libpem_plugins.so")], capture_output=True, text=True
    )
    assert loaded.stdout.strip() == "True", loaded.stderr[-2000:]

    other = tmp_path / "libother.so"
    other.write_bytes(b"not the library the engine was built with")
    code, out, err = run([engine, "--repo", repo, "--name", "x", "--plugins", other], capsys)
    one_error(code, out, err, "is not the library m.engine was built with")
    one_error(*run([engine, "--repo", repo, "--name", "x", "--max-batch", 8], capsys), "takes 1 to 4 frames")
    one_error(
        *run([engine, "--repo", repo, "--name", "x", "--instance-kind", "cpu"], capsys), "run on GPUs only"
    )

    static = dataclasses.replace(
        sidecar,
        flavour="tensorrt",
        batch_profile=None,
        inputs=(dataclasses.replace(sidecar.inputs[0], shape=(1, 64, 128, 3)),),
    )
    write_sidecar(engine, static)
    one_error(*run([engine, "--repo", repo, "--name", "x"], capsys), "has no batch profile (static batch 1)")
    assert sorted(p.name for p in repo.iterdir()) == ["pem"]


def test_bad_input_is_one_line(
    exported: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, static = exported("cityscapes-tiny", batch=1, debug=False)
    _, dynamic = exported("cityscapes-tiny", batch=0, debug=False)
    repo = tmp_path / "models"
    one_error(*run([tmp_path / "nope.onnx", "--repo", repo], capsys), "no such model file")
    one_error(*run([static, "--repo", repo], capsys), "static batch of 1; Triton batches requests")
    one_error(*run([dynamic, "--repo", repo, "--platform", "tensorflow"], capsys), "unknown --platform")
    one_error(
        *run([dynamic, "--repo", repo, "--platform", "tensorrt_plan"], capsys), "needs onnxruntime_onnx"
    )
    one_error(*run([dynamic, "--repo", repo, "--instance-kind", "tpu"], capsys), "unknown --instance-kind")
    one_error(*run([dynamic, "--repo", repo, "--max-batch", 0], capsys), "--max-batch 0")
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"\x00\x01 not a protobuf")
    one_error(*run([bogus, "--repo", repo], capsys), "bogus.onnx")
    orphan = tmp_path / "orphan.engine"
    orphan.write_bytes(b"plan")
    one_error(*run([orphan, "--repo", repo], capsys), "has no sidecar")
    assert not repo.exists() or not any(repo.iterdir())
