"""ONNX Runtime backend: CPU, or CUDA where onnxruntime-gpu and a GPU are present."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pem_rt.errors import PemError
from pem_rt.model_meta import ModelMeta
from runtime.backends.base import check_input, check_outputs

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def choose_provider(provider: str) -> tuple[str, str]:
    """'auto' | 'cpu' | 'cuda' -> (ONNX Runtime provider name, why it was chosen)."""
    have = available_providers()
    if provider == "auto":
        if PROVIDERS["cuda"] in have:
            return PROVIDERS["cuda"], "CUDA provider available"
        return PROVIDERS["cpu"], "this onnxruntime has no CUDA provider"
    if provider not in PROVIDERS:
        raise PemError(f"unknown --provider {provider}; choose auto, cpu or cuda")
    if PROVIDERS[provider] not in have:
        raise PemError(
            f"--provider {provider}: this onnxruntime has only {', '.join(have)}; install onnxruntime-gpu "
            "on a CUDA machine, or use --provider cpu"
        )
    return PROVIDERS[provider], f"--provider {provider}"


class OnnxRuntimeBackend:
    """Args:
    path: a deployable ONNX graph (export/export_onnx.py), not the TensorRT graph with plugin ops.
    provider: auto (CUDA when available), cpu or cuda.
    threads: intra-op threads (0 = ONNX Runtime's default, one per core).
    """

    def __init__(self, path: Path, provider: str = "auto", threads: int = 0) -> None:
        import onnxruntime as ort

        if not Path(path).is_file():
            raise PemError(f"--onnx {path}: no such file; export one with `pem export`")
        self.path = Path(path)
        chosen, self.why = choose_provider(provider)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only: our own lines say what happens
        # idle intra-op threads sleep instead of spinning: the capture and output threads need those cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session: Any = ort.InferenceSession(str(path), options, providers=[chosen])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            hint = " (a .trt.onnx with plugin ops runs only in TensorRT)" if "pem" in first.lower() else ""
            raise PemError(f"ONNX Runtime cannot load {path}: {first[:300]}{hint}") from None
        self.meta = ModelMeta.from_props(dict(self.session.get_modelmeta().custom_metadata_map), str(path))
        self.max_batch = self.meta.batch  # static: exactly that many frames per call; 0: any number
        [inp, *rest] = self.session.get_inputs()
        if rest:
            raise PemError(f"{path} has {1 + len(rest)} inputs; a deployable PEM graph has one (image)")
        dtype = {"tensor(uint8)": "uint8"}.get(inp.type, inp.type)
        check_input(self.path, self.meta, inp.name, dtype, tuple(inp.shape))
        self.output_names = [o.name for o in self.session.get_outputs()]
        check_outputs(self.path, self.meta, self.output_names)
        self.provider = chosen
        self.name = f"onnxruntime {ort.__version__} {chosen}"

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        wanted = list(self.meta.outputs)
        return dict(zip(wanted, self.session.run(wanted, {"image": image}), strict=True))

    def close(self) -> None:
        self.session = None
