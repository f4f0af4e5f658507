"""Which dataset format a command reads, and whose classes the model gets.

A folder with a dataset.yaml is a custom dataset (its classes); otherwise a benchmark layout, named by
``--dataset``, by a dataset preset (``cityscapes-r50``), or recognised from its folders when the preset is
an architecture alone (``tiny``).
"""

from __future__ import annotations

from pathlib import Path

from pem_rt.errors import PemError
from training.data.custom import custom_meta
from training.data.spec import load_spec, spec_file
from training.dataset_meta import DATASETS, DatasetMeta
from training.model.config import ARCHITECTURES, get_preset


def detect_benchmark(root: Path) -> str | None:
    """The benchmark layout of ``root`` (cityscapes, ade20k, coco-panoptic), or None."""
    if (root / "leftImg8bit").is_dir():
        return "cityscapes"
    if (root / "ADEChallengeData2016").is_dir() or root.name == "ADEChallengeData2016":
        return "ade20k"
    if any((root / "annotations").glob("panoptic_*2017.json")):
        return "coco-panoptic"
    return None


def choose_dataset(preset: str, flag: str | None, root: Path) -> tuple[str, DatasetMeta | None]:
    """(dataset format, classes for an architecture preset); ``flag`` is ``--dataset`` or None."""
    if not root.is_dir():
        raise PemError(
            f"dataset root {root} does not exist; pass --data DIR (the folder of the dataset files)"
        )
    if flag == "custom" or (flag is None and spec_file(root) is not None):
        return "custom", custom_meta(load_spec(root))
    if flag is not None:
        return flag, DATASETS[flag]
    if preset not in ARCHITECTURES:
        return get_preset(preset).dataset.name, None
    found = detect_benchmark(root)
    if found is None:
        raise PemError(
            f"{root} has no dataset.yaml and is no Cityscapes/ADE20K/COCO layout: describe your data in "
            f"{root}/dataset.yaml (README: Train on your own data) or pass --dataset"
        )
    return found, DATASETS[found]
