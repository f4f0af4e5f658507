"""What a deployable PEM graph carries about itself (ONNX metadata_props, engine sidecars).

Torch-free: the runtime reads it from an ONNX file or an engine's JSON sidecar. Every value is
stored as a string (JSON for lists) under a ``pem.`` key.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from pem_rt.errors import PemError
from pem_rt.onnx_props import NotOnnx, read_metadata_props

FORMAT_VERSION = "1"
SEMANTIC_OUTPUTS = ("labels",)
PANOPTIC_OUTPUTS = ("query_labels", "query_scores", "winner", "winner_area", "mask_area")
VOID_WINNER = 255  # value of `winner` where no segment owns the pixel
# How the graph turns mask logits into frame-resolution maps: "exact" follows the reference (every query's
# mask up-sampled to the frame, then combined); "fast" combines at mask resolution and computes only the
# pixels on edges exactly (export/deploy_model.py). Files written before the choice existed are exact.
POSTPROCESS_MODES = ("exact", "fast")
DEFAULT_POSTPROCESS = "exact"


@dataclass(frozen=True)
class ModelMeta:
    """Args:
    name: preset name the model was built from.
    task: "semantic" (output `labels`) or "panoptic" (outputs PANOPTIC_OUTPUTS).
    classes, palette, thing_ids: the dataset's classes (contiguous ids), RGB colours, thing classes.
    input_height, input_width: the static frame size the graph takes (uint8 BGR NHWC).
    batch: static batch size, or 0 for a dynamic batch dimension.
    num_queries: decoder queries (panoptic outputs are per query).
    object_mask_threshold, overlap_threshold: panoptic thresholds (the first is applied in the graph).
    pixel_mean, pixel_std: RGB normalisation applied inside the graph.
    opset: ONNX opset; exporter: software versions that wrote the graph.
    cross_attention, decoder_layers: "pem" or "masked" and the number of decoder layers (what graph
        surgery expects to find).
    postprocess: "exact" or "fast" (POSTPROCESS_MODES); absent in older files, which are exact.
    """

    name: str
    task: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    thing_ids: tuple[int, ...]
    input_height: int
    input_width: int
    batch: int
    num_queries: int
    object_mask_threshold: float
    overlap_threshold: float
    pixel_mean: tuple[float, float, float]
    pixel_std: tuple[float, float, float]
    opset: int
    exporter: str
    cross_attention: str = "pem"
    decoder_layers: int = 6
    postprocess: str = "exact"
    format: str = FORMAT_VERSION

    @property
    def outputs(self) -> tuple[str, ...]:
        return SEMANTIC_OUTPUTS if self.task == "semantic" else PANOPTIC_OUTPUTS

    def to_props(self) -> dict[str, str]:
        return {f"pem.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in asdict(self).items()}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_onnx(path: str | os.PathLike[str], flag: str = "--onnx") -> ModelMeta:
        """The metadata of an ONNX file (any graph `pem export` wrote or a later stage derived from it).

        Reads only the file's metadata, never its graph; ``flag`` names the file in error messages.
        """
        try:
            props = read_metadata_props(path)
        except FileNotFoundError:
            raise PemError(f"{flag} {path} does not exist; export one with `pem export --size HxW`") from None
        except (NotOnnx, IsADirectoryError, ValueError):
            raise PemError(
                f"{flag} {path} is not a readable ONNX file; re-export it with `pem export`"
            ) from None
        return ModelMeta.from_props(props, str(path))

    @staticmethod
    def from_props(props: dict[str, str], source: str) -> ModelMeta:
        """Parse ``pem.*`` metadata; ``source`` names the file in the error message."""
        values: dict[str, Any] = {}
        try:
            for f in fields(ModelMeta):
                raw = props.get(f"pem.{f.name}")
                if raw is None:
                    if f.name in ("format", "cross_attention", "decoder_layers", "postprocess"):
                        continue
                    raise KeyError(f.name)
                values[f.name] = raw if f.type == "str" else json.loads(raw)
        except (KeyError, json.JSONDecodeError, RecursionError) as e:
            raise PemError(
                f"{source} has no PEM-RT metadata ({e}); export it with `pem export` (export/export_onnx.py)"
            ) from None
        return ModelMeta.from_json(values, source)

    @staticmethod
    def from_json(d: dict[str, Any], source: str) -> ModelMeta:
        try:
            return ModelMeta(
                name=str(d["name"]),
                task=str(d["task"]),
                classes=tuple(str(c) for c in d["classes"]),
                palette=tuple((int(c[0]), int(c[1]), int(c[2])) for c in d["palette"]),
                thing_ids=tuple(int(t) for t in d["thing_ids"]),
                input_height=int(d["input_height"]),
                input_width=int(d["input_width"]),
                batch=int(d["batch"]),
                num_queries=int(d["num_queries"]),
                object_mask_threshold=float(d["object_mask_threshold"]),
                overlap_threshold=float(d["overlap_threshold"]),
                pixel_mean=tuple(float(v) for v in d["pixel_mean"]),  # type: ignore[arg-type]
                pixel_std=tuple(float(v) for v in d["pixel_std"]),  # type: ignore[arg-type]
                opset=int(d["opset"]),
                exporter=str(d["exporter"]),
                cross_attention=str(d.get("cross_attention", "pem")),
                decoder_layers=int(d.get("decoder_layers", 6)),
                postprocess=check_postprocess(d.get("postprocess", "exact")),
                format=str(d.get("format", FORMAT_VERSION)),
            )
        except (
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            OverflowError,
            AttributeError,
            RecursionError,
        ) as e:
            raise PemError(f"{source}: malformed PEM-RT metadata ({e}); re-export the model") from None


def check_postprocess(value: Any) -> str:
    """The post-processing mode ``value`` names; ValueError when it is none of POSTPROCESS_MODES."""
    mode = str(value)
    if mode not in POSTPROCESS_MODES:
        raise ValueError(f"postprocess {mode!r} is not one of {', '.join(POSTPROCESS_MODES)}")
    return mode
