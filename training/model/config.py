"""Typed model configuration: one frozen dataclass tree, presets as plain functions.

Architecture presets ``tiny``, ``stdc1``, ``stdc2``, ``r50`` take their classes from the data
(:data:`ARCHITECTURES`). Dataset presets are ``<dataset>-<backbone>``: datasets ``cityscapes`` (19
classes), ``ade20k`` (150), ``coco-panoptic`` (133); backbones ``r50``, ``stdc1``, ``stdc2``, and
``tiny`` (a narrow STDC1 used by tests and the demo). The paper's ablations are fields:
``decoder.cross_attention`` ("pem" or "masked"), ``pixel_decoder.use_csm`` and ``decoder.num_layers``;
change them with :func:`dataclasses.replace` or :func:`with_ablation`.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pem_rt.errors import PemError
from training.dataset_meta import ADE20K, CITYSCAPES, COCO_PANOPTIC, DatasetMeta

BackboneName = Literal["resnet50", "stdc1", "stdc2"]
CrossAttention = Literal["pem", "masked"]
Task = Literal["semantic", "panoptic", "instance"]

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, 0..255
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class BackboneConfig:
    """Args:
    name: resnet50 (torchvision/detectron2 layout, stride in the 3x3 conv) or STDC1/STDC2.
    stdc_base: STDC base width (64 in the paper; narrower for tiny test models).
    """

    name: BackboneName = "resnet50"
    stdc_base: int = 64


@dataclass(frozen=True)
class PixelDecoderConfig:
    """Args:
    conv_dim: channels inside the pixel decoder (CONVS_DIM).
    mask_dim: channels of the stride-4 mask features (MASK_DIM).
    use_csm: context self-modulation on each level (ablation switch).
    csm_reduction: CSM MLP hidden width is conv_dim // csm_reduction (2 in the reference code).
    """

    conv_dim: int = 128
    mask_dim: int = 256
    use_csm: bool = True
    csm_reduction: int = 2


@dataclass(frozen=True)
class DecoderConfig:
    """Args:
    hidden_dim: transformer width.
    num_heads: attention heads (PEM-CA splits channels into this many heads).
    num_queries: object queries.
    num_layers: transformer layers; num_layers + 1 predictions (DEC_LAYERS = num_layers + 1).
    ffn_dim: feed-forward hidden width.
    cross_attention: "pem" (prototype-based) or "masked" (Mask2Former masked attention, ablation).
    """

    hidden_dim: int = 256
    num_heads: int = 8
    num_queries: int = 100
    num_layers: int = 6
    ffn_dim: int = 2048
    cross_attention: CrossAttention = "pem"


@dataclass(frozen=True)
class InferenceConfig:
    """Args:
    task: what post-processing produces: semantic label map, panoptic segments or instances.
    object_mask_threshold: panoptic: keep queries whose class score is above this.
    overlap_threshold: panoptic: drop a segment that keeps less than this fraction of its mask.
    instances_per_image: instance: top-k (query, class) pairs kept.
    """

    task: Task = "semantic"
    object_mask_threshold: float = 0.8
    overlap_threshold: float = 0.8
    instances_per_image: int = 100


@dataclass(frozen=True)
class ModelConfig:
    """The whole model. ``dataset`` carries class names, palette and which classes are things."""

    name: str
    dataset: DatasetMeta
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD
    size_divisibility: int = 32

    @property
    def num_classes(self) -> int:
        return len(self.dataset.classes)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, object]) -> ModelConfig:
        """Inverse of :meth:`to_dict` (used to store the config inside checkpoints). Every field is
        checked for its type and range: a config read from a file says which field is wrong."""
        try:
            if not isinstance(d, dict):
                raise ValueError("it is not a mapping")
            known = {f.name for f in dataclasses.fields(ModelConfig)}
            _no_unknown(d, known, "config")
            cfg = ModelConfig(
                name=_checked(d["name"], str, "name"),
                dataset=DatasetMeta.from_dict(d["dataset"]),  # type: ignore[arg-type]
                backbone=_section(BackboneConfig, d["backbone"], "backbone"),
                pixel_decoder=_section(PixelDecoderConfig, d["pixel_decoder"], "pixel_decoder"),
                decoder=_section(DecoderConfig, d["decoder"], "decoder"),
                inference=_section(InferenceConfig, d["inference"], "inference"),
                pixel_mean=_triple(d["pixel_mean"], "pixel_mean", positive=False),
                pixel_std=_triple(d["pixel_std"], "pixel_std", positive=True),
                size_divisibility=_checked(d["size_divisibility"], int, "size_divisibility"),
            )
            if cfg.decoder.hidden_dim % cfg.decoder.num_heads:
                raise ValueError("decoder.hidden_dim is not a multiple of decoder.num_heads")
        except (KeyError, TypeError, ValueError) as e:
            what = f"no field {e}" if isinstance(e, KeyError) else str(e)
            raise PemError(
                f"model config is malformed ({what}); re-save the checkpoint with this version"
            ) from e
        return cfg


# the largest width or count a stored config may hold: larger is a damaged file, not a model this code builds
MAX_CONFIG_INT = 1 << 16
_T = TypeVar("_T")


def _no_unknown(d: dict[Any, Any], known: set[str], where: str) -> None:
    unknown = sorted(str(k)[:40] for k in d if k not in known)
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {', '.join(unknown[:3])}")


def _checked(value: object, hint: object, where: str) -> Any:
    """``value`` if it is of type ``hint`` (str, bool, int in 1..MAX_CONFIG_INT, finite float in [0, 1],
    or one of a Literal's values), else ValueError naming ``where``."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"{where} is {str(value)[:40]!r}, not one of {', '.join(choices)}")
    elif hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false")
    elif hint is int:
        if type(value) is not int or not 0 < value <= MAX_CONFIG_INT:
            raise ValueError(f"{where} must be a whole number in 1..{MAX_CONFIG_INT}")
    elif hint is float:  # the configs' floats are thresholds
        if type(value) not in (int, float) or not 0.0 <= value <= 1.0:  # type: ignore[operator]
            raise ValueError(f"{where} must be a number in 0..1")
        value = float(value)  # type: ignore[arg-type]
    elif hint is str and not isinstance(value, str):
        raise ValueError(f"{where} must be a string")
    return value


def _section(cls: type[_T], d: object, where: str) -> _T:
    """Dataclass ``cls`` from a stored mapping, every field checked (fields it lacks keep their defaults)."""
    if not isinstance(d, dict):
        raise ValueError(f"{where} is not a mapping")
    hints = typing.get_type_hints(cls)
    _no_unknown(d, set(hints), where)
    return cls(**{k: _checked(v, hints[k], f"{where}.{k}") for k, v in d.items()})


def _triple(value: object, where: str, positive: bool) -> tuple[float, float, float]:
    def fits(v: object) -> bool:
        return type(v) in (int, float) and math.isfinite(v) and (v > 0 if positive else v >= 0)  # type: ignore[arg-type,operator]

    if not (isinstance(value, list | tuple) and len(value) == 3 and all(fits(v) for v in value)):
        raise ValueError(f"{where} must be three finite numbers {'above 0' if positive else 'of at least 0'}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _paper(dataset: DatasetMeta, backbone: BackboneName, task: Task) -> ModelConfig:
    short = {"resnet50": "r50", "stdc1": "stdc1", "stdc2": "stdc2"}[backbone]
    return ModelConfig(
        name=f"{dataset.name}-{short}",
        dataset=dataset,
        backbone=BackboneConfig(name=backbone),
        inference=InferenceConfig(task=task),
    )


def _tiny(dataset: DatasetMeta, task: Task) -> ModelConfig:
    """A narrow STDC1 PEM (~0.4 M parameters) that trains on CPU in minutes: tests and the demo."""
    return ModelConfig(
        name=f"{dataset.name}-tiny",
        dataset=dataset,
        backbone=BackboneConfig(name="stdc1", stdc_base=16),
        pixel_decoder=PixelDecoderConfig(conv_dim=32, mask_dim=32),
        decoder=DecoderConfig(hidden_dim=32, num_heads=4, num_queries=20, num_layers=3, ffn_dim=64),
        inference=InferenceConfig(task=task),
    )


def _presets() -> dict[str, Callable[[], ModelConfig]]:
    table: dict[str, Callable[[], ModelConfig]] = {}
    for dataset, task in ((CITYSCAPES, "semantic"), (ADE20K, "semantic"), (COCO_PANOPTIC, "panoptic")):
        for backbone, short in (("resnet50", "r50"), ("stdc1", "stdc1"), ("stdc2", "stdc2")):
            table[f"{dataset.name}-{short}"] = (
                lambda d=dataset, b=backbone, t=task: _paper(d, b, t)  # type: ignore[misc]
            )
        table[f"{dataset.name}-tiny"] = lambda d=dataset, t=task: _tiny(d, t)  # type: ignore[misc]
    return table


PRESETS: dict[str, Callable[[], ModelConfig]] = _presets()

# Architecture alone; the classes come from the data (`pem train --preset tiny --data DIR`).
ARCHITECTURES: dict[str, Callable[[DatasetMeta], ModelConfig]] = {
    "r50": lambda d: _paper(d, "resnet50", "semantic"),
    "stdc1": lambda d: _paper(d, "stdc1", "semantic"),
    "stdc2": lambda d: _paper(d, "stdc2", "semantic"),
    "tiny": lambda d: _tiny(d, "semantic"),
}


def get_preset(name: str, dataset: DatasetMeta | None = None) -> ModelConfig:
    """Return the preset ``name``; an unknown name is a one-line error listing the valid ones.

    An architecture name (``tiny``, ``stdc1``, ``stdc2``, ``r50``) is built for ``dataset``'s classes
    (Cityscapes' when None) and named ``<dataset>-<architecture>``.
    """
    if name in ARCHITECTURES:
        return ARCHITECTURES[name](dataset or CITYSCAPES)
    if name not in PRESETS:
        raise PemError(
            f"unknown preset '{name}'; choose an architecture ({', '.join(ARCHITECTURES)}) or one of: "
            f"{', '.join(PRESETS)}"
        )
    return PRESETS[name]()


def architecture(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` without what depends on the data or the task: two models of one architecture compare equal."""
    return dataclasses.replace(cfg, name="", dataset=CITYSCAPES, inference=InferenceConfig())


def with_ablation(
    cfg: ModelConfig,
    *,
    cross_attention: CrossAttention | None = None,
    use_csm: bool | None = None,
    num_layers: int | None = None,
    task: Task | None = None,
) -> ModelConfig:
    """Return ``cfg`` with the paper's ablation switches (and the inference task) changed."""
    decoder = cfg.decoder
    if cross_attention is not None:
        decoder = dataclasses.replace(decoder, cross_attention=cross_attention)
    if num_layers is not None:
        if num_layers < 1:
            raise PemError(f"--decoder-layers must be >= 1, got {num_layers}")
        decoder = dataclasses.replace(decoder, num_layers=num_layers)
    pixel = cfg.pixel_decoder if use_csm is None else dataclasses.replace(cfg.pixel_decoder, use_csm=use_csm)
    inference = cfg.inference if task is None else dataclasses.replace(cfg.inference, task=task)
    return dataclasses.replace(cfg, decoder=decoder, pixel_decoder=pixel, inference=inference)
