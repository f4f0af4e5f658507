"""Triton Inference Server backend: frames go to a model that `pem triton-repo` wrote, over gRPC.

``grpc://HOST:PORT/MODEL`` names the server and the model. The model metadata (class names, palette,
input size, panoptic thresholds) comes from the ``pem.*`` parameters of the server's model config, so the
runtime needs nothing but the address. The server batches concurrent requests (dynamic batching); one
call here sends up to ``max_batch_size`` frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pem_rt.errors import PemError
from pem_rt.model_meta import ModelMeta
from runtime.backends.base import check_input, check_outputs

SCHEME = "grpc://"


def parse_address(address: str) -> tuple[str, str]:
    """``grpc://HOST:PORT/MODEL`` -> (``HOST:PORT``, ``MODEL``)."""
    rest = address[len(SCHEME) :] if address.startswith(SCHEME) else ""
    url, _, model = rest.partition("/")
    if not url or ":" not in url or not model or "/" in model:
        raise PemError(f"--triton {address}: expected grpc://HOST:PORT/MODEL, e.g. grpc://localhost:8001/pem")
    return url, model


class TritonBackend:
    """Args:
    address: ``grpc://HOST:PORT/MODEL``.
    timeout_s: how long one request may take before it counts as failed.
    """

    def __init__(self, address: str, timeout_s: float = 30.0) -> None:
        try:
            import tritonclient.grpc as grpcclient
            from tritonclient.grpc import model_config_pb2
            from tritonclient.utils import InferenceServerException
        except ImportError:
            raise PemError("--triton needs tritonclient: pip install 'pem-rt[triton]'") from None
        self._grpc, self._error = grpcclient, InferenceServerException
        self.url, self.model = parse_address(address)
        self.path = address
        self.timeout_s = timeout_s
        self.client: Any = grpcclient.InferenceServerClient(self.url)
        try:
            if not self.client.is_server_live(client_timeout=timeout_s):
                raise PemError(f"--triton {address}: the server at {self.url} is not live")
            if not self.client.is_model_ready(self.model, client_timeout=timeout_s):
                names = [m.name for m in self.client.get_model_repository_index().models]
                raise PemError(
                    f"--triton {address}: model {self.model} is not ready on {self.url} "
                    f"(its repository has: {', '.join(names) or 'nothing'})"
                )
            config = self.client.get_model_config(self.model, client_timeout=timeout_s).config
        except InferenceServerException as e:
            raise PemError(f"--triton {address}: {_first_line(e)}; is tritonserver running there?") from None
        params = {k: v.string_value for k, v in config.parameters.items() if k.startswith("pem.")}
        self.meta = ModelMeta.from_props(
            params, f"triton model {self.model} (write it with `pem triton-repo`)"
        )
        self.max_batch = int(config.max_batch_size)
        if self.max_batch < 1:
            raise PemError(
                f"--triton {address}: the model does not batch (max_batch_size 0); use pem triton-repo"
            )
        [inp, *rest] = config.input
        if rest:
            raise PemError(f"--triton {address}: the model has {1 + len(rest)} inputs; PEM has one (image)")
        dtype = model_config_pb2.DataType.Name(inp.data_type).removeprefix("TYPE_").lower()  # uint8, fp32...
        check_input(address, self.meta, inp.name, dtype, (-1, *[int(d) for d in inp.dims]))
        check_outputs(address, self.meta, [o.name for o in config.output])
        self.name = f"triton {self.url} model {self.model} (max batch {self.max_batch})"

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        grpc = self._grpc
        request = grpc.InferInput("image", list(image.shape), "UINT8")
        request.set_data_from_numpy(np.ascontiguousarray(image))
        wanted = [grpc.InferRequestedOutput(n) for n in self.meta.outputs]
        try:
            reply = self.client.infer(self.model, [request], outputs=wanted, client_timeout=self.timeout_s)
        except self._error as e:
            raise PemError(f"triton {self.url}/{self.model}: {_first_line(e)}") from None
        return {n: reply.as_numpy(n) for n in self.meta.outputs}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__
