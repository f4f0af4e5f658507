"""A small KServe-v2 gRPC inference server for the tests: it serves the ONNX models of a Triton model
repository with ONNX Runtime, the way Triton's onnxruntime_onnx backend would.

Triton itself does not install here (its server ships as NVIDIA containers), so the Triton client is tested
against this stand-in. It reads each config.pbtxt with the ModelConfig protobuf (as tritonserver does)
and checks requests against it (input name, datatype, dims, max_batch_size), so a repository or request
the real server would refuse fails here too. Only the RPCs the client uses are implemented.
"""

from __future__ import annotations

from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

DATATYPES = {"uint8": "UINT8", "int32": "INT32", "int64": "INT64", "float32": "FP32", "float16": "FP16"}
CONFIG_TYPES = {"TYPE_UINT8": "UINT8", "TYPE_INT32": "INT32", "TYPE_INT64": "INT64", "TYPE_FP32": "FP32"}


class _Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, repo: Path) -> None:
        self.models: dict[str, tuple[Any, ort.InferenceSession]] = {}
        for path in sorted(repo.glob("*/config.pbtxt")):
            config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
            assert config.name == path.parent.name, "Triton requires the config name to be the folder's"
            assert config.platform == "onnxruntime_onnx", "this stand-in serves ONNX models only"
            version = max(int(p.name) for p in path.parent.iterdir() if p.name.isdigit())
            session = ort.InferenceSession(str(path.parent / str(version) / "model.onnx"))
            self.models[config.name] = (config, session)
        self.requests = 0

    def ServerLive(self, request: Any, context: Any) -> Any:  # gRPC method names are the service's
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:
        return service_pb2.ServerReadyResponse(ready=True)

    def ModelReady(self, request: Any, context: Any) -> Any:
        return service_pb2.ModelReadyResponse(ready=request.name in self.models)

    def RepositoryIndex(self, request: Any, context: Any) -> Any:
        index = service_pb2.RepositoryIndexResponse
        return index(models=[index.ModelIndex(name=n, version="1", state="READY") for n in self.models])

    def ModelConfig(self, request: Any, context: Any) -> Any:
        if request.name not in self.models:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{request.name}'")
        return service_pb2.ModelConfigResponse(config=self.models[request.name][0])

    def ModelInfer(self, request: Any, context: Any) -> Any:
        if request.model_name not in self.models:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{request.model_name}'")
        config, session = self.models[request.model_name]
        [spec] = config.input
        [tensor] = request.inputs
        shape = tuple(tensor.shape)
        want = model_config_pb2.DataType.Name(spec.data_type)
        if tensor.name != spec.name or CONFIG_TYPES[want] != tensor.datatype:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"unexpected input {tensor.name} {tensor.datatype}"
            )
        if not 1 <= shape[0] <= config.max_batch_size or list(shape[1:]) != list(spec.dims):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unexpected shape {list(shape)}")
        image = np.frombuffer(request.raw_input_contents[0], np.uint8).reshape(shape)
        names = [o.name for o in request.outputs] or [o.name for o in config.output]
        arrays = session.run(names, {spec.name: image})
        self.requests += 1
        reply = service_pb2.ModelInferResponse(model_name=request.model_name, model_version="1")
        for name, array in zip(names, arrays, strict=True):
            out = reply.outputs.add()
            out.name, out.datatype = name, DATATYPES[array.dtype.name]
            out.shape.extend(array.shape)
            reply.raw_output_contents.append(np.ascontiguousarray(array).tobytes())
        return reply


class KServeServer:
    """``with KServeServer(repo) as server:`` serves ``repo`` on ``server.address`` (127.0.0.1:PORT)."""

    def __init__(self, repo: Path) -> None:
        self.servicer = _Servicer(repo)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"

    def __enter__(self) -> KServeServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)
