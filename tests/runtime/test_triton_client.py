"""The Triton backend (`pem stream --triton grpc://HOST:PORT/MODEL`) against a repository written by
`pem triton-repo`, served by the KServe-v2 stand-in (tests/runtime/kserve_server.py): the outputs equal
ONNX Runtime's on the same frames, and a wrong address or model is one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from export.triton_repo import Serving, describe, write_repo
from pem_rt.synthetic import SyntheticScene
from runtime.segmenter import Segmenter

from .conftest import RunStream, assert_one_error_line
from .kserve_server import KServeServer

NAME = "pem_city"


@pytest.fixture
def server(dynamic_semantic_onnx: Path, tmp_path: Path) -> Iterator[KServeServer]:
    repo = tmp_path / "models"
    write_repo(describe(dynamic_semantic_onnx, "auto", 4), repo, NAME, Serving(kind="cpu"))
    with KServeServer(repo) as running:
        yield running


def test_segmenter_through_triton_equals_onnxruntime(
    server: KServeServer, dynamic_semantic_onnx: Path
) -> None:
    remote = Segmenter(f"grpc://{server.address}/{NAME}", log=lambda m: None)
    local = Segmenter(dynamic_semantic_onnx, backend="onnxruntime", provider="cpu", log=lambda m: None)
    assert remote.meta == local.meta and remote.max_batch == 4
    assert remote.name.startswith(f"triton {server.address} model {NAME}")
    frames = [SyntheticScene(96, 160, seed=s).frame(i) for s, i in [(0, 0), (1, 3), (2, 7)]]
    for frame in frames:
        np.testing.assert_array_equal(remote(frame).labels, local(frame).labels)
    batched = remote.run_batch([remote.prepare(f) for f in frames])
    for got, frame in zip(batched, frames, strict=True):
        np.testing.assert_array_equal(got.labels, local(frame).labels)
    assert server.servicer.requests == 4


def test_stream_with_several_sources_through_triton(
    server: KServeServer, dynamic_semantic_onnx: Path, run_stream: RunStream, tmp_path: Path
) -> None:
    masks = tmp_path / "masks"
    run = run_stream(
        "--triton", f"grpc://{server.address}/{NAME}", "--source", "synthetic:64x128",
        "--source", "synthetic:64x128@5", "--headless", "--frames", 6, "--save-masks", masks,
    )  # fmt: skip
    assert run.code == 0 and run.stderr == "", run.output
    assert f"triton {server.address} model {NAME}" in run.stdout
    local = Segmenter(dynamic_semantic_onnx, backend="onnxruntime", provider="cpu", log=lambda m: None)
    for k, seed in enumerate((0, 5)):
        for i in range(6):
            got = cv2.imread(str(masks / f"source{k}" / f"synthetic_{i:06d}.png"), cv2.IMREAD_UNCHANGED)
            want = local(SyntheticScene(64, 128, seed=seed).frame(i)).labels
            np.testing.assert_array_equal(got, want, err_msg=f"source {k} frame {i}")


def test_unknown_model_names_the_ones_served(server: KServeServer, run_stream: RunStream) -> None:
    run = run_stream("--triton", f"grpc://{server.address}/nope", "--headless", "--frames", 1)
    assert_one_error_line(run, "model nope is not ready", NAME)


@pytest.mark.parametrize(
    ("address", "phrase"),
    [
        ("localhost:8001/pem", "expected grpc://HOST:PORT/MODEL"),
        ("grpc://localhost:8001", "expected grpc://HOST:PORT/MODEL"),
        ("grpc://127.0.0.1:9/pem", "is tritonserver running there?"),
    ],
)
def test_bad_address_is_one_line(run_stream: RunStream, address: str, phrase: str) -> None:
    run = run_stream("--triton", address, "--headless", "--frames", 1)
    assert_one_error_line(run, phrase)
