"""The PEM model (Prototype-based Efficient MaskFormer, CVPR 2024) in PyTorch."""

from training.model.config import PRESETS, ModelConfig, get_preset, with_ablation
from training.model.pem import PEM, PEMOutput, build_model

__all__ = ["PEM", "PRESETS", "ModelConfig", "PEMOutput", "build_model", "get_preset", "with_ablation"]
