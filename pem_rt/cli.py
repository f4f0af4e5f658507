"""The `pem` console entry point: `pem <command> [args]` runs one PEM-RT command.

Commands are listed explicitly below and imported lazily, so `pem stream` never imports torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> (module with a `main(argv) -> int`, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("pem_rt.demo", "the whole pipeline end to end on this machine (CPU is enough)"),
    "model-info": ("training.model_info", "parameters and GFLOPs of a preset at an input size"),
    "synthetic": ("training.make_synthetic", "write a synthetic Cityscapes-format dataset (tests, demo)"),
    "dataset": ("training.dataset_cmd", "check a dataset.yaml dataset: counts per class, every bad file"),
    "train": ("training.train", "train PEM (single process, or under torchrun for DDP)"),
    "evaluate": ("training.evaluate", "mIoU / PQ of a checkpoint, or of saved label maps from any backend"),
    "export": ("export.export_onnx", "checkpoint -> deployable ONNX (pre/post-processing in the graph)"),
    "surgery": ("export.surgery", "reference ONNX -> TensorRT graph with our plugin ops"),
    "calibrate": ("export.calibrate", "frames -> INT8 Q/DQ ONNX + reusable calibration cache"),
    "build-engine": (
        "export.build_engine",
        "ONNX -> TensorRT/TensorRT-RTX engine + sidecar (fp32/fp16/int8), or inspect one",
    ),
    "compare": ("export.compare", "accuracy across PyTorch / ONNX / FP16 / INT8 / engine: JSON + PNG report"),
    "build-plugins": (
        "plugins.builder",
        "compile the TensorRT plugin library (build/plugins/libpem_plugins.so)",
    ),
    "stream": ("runtime.stream", "live segmentation of a camera, video, RTSP stream or image folder"),
    "triton-repo": ("export.triton_repo", "engine or ONNX -> Triton Inference Server model repository"),
    "doctor": ("pem_rt.doctor", "what this machine can run (stream, build, train) and what to fix"),
}


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: pem <command> [args]   (pem <command> --help for its flags)", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: unknown command '{name}'; run `pem --help` for the list", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    code: int = module.main(rest)
    return code


if __name__ == "__main__":
    sys.exit(main())
