"""What one training run is told, as typed values: the currency between `pem train` and the trainer.

    from training.train_config import TrainConfig, DataConfig, recipe_for
    from training.trainer import train
    train(TrainConfig(model=get_preset("cityscapes-tiny"), data=DataConfig(Path("runs/synthetic")),
                      out=Path("runs/tiny"), optim=OptimConfig(lr=2e-3, iters=250), ...))

:class:`TrainConfig` composes the model config, the optimiser, loss and augmentation configs of the
modules that use them, and the data, schedule, evaluation and checkpoint sections below. `pem train`
fills it from its argument groups (training/train.py); defaults the reference sets per dataset (crop,
base size, test-time short side, learning rate) come from :func:`recipe_for`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pem_rt.errors import PemError
from training.data.loader import dataset_defaults
from training.data.transforms import AugmentConfig
from training.losses.criterion import LossConfig
from training.model.config import ModelConfig
from training.optim import OptimConfig
from training.qat import QatConfig

# Reference base learning rates (configs of the PEM repository): Cityscapes 7e-4, ADE20K 4e-4.
DEFAULT_LR = {"cityscapes": 7e-4, "ade20k": 4e-4, "coco-panoptic": 1e-4, "custom": 4e-4}


@dataclass(frozen=True)
class Recipe:
    """The reference's per-dataset settings: crop, short side at scale 1.0, test-time short side
    (None = native size) and base learning rate."""

    crop: tuple[int, int]
    base_size: int
    eval_short_side: int | None
    lr: float


def recipe_for(dataset: str) -> Recipe:
    """The benchmark's recipe, or for a dataset.yaml dataset ("custom") ADE20K-like defaults."""
    crop, base, short = dataset_defaults(dataset)
    return Recipe(crop, base, short, DEFAULT_LR.get(dataset, DEFAULT_LR["custom"]))


@dataclass(frozen=True)
class DataConfig:
    """Args:
    root: dataset folder; dataset: its format (None = the model's dataset).
    train_split, val_split: split names; an empty val_split disables evaluation.
    workers: data-loading processes.
    """

    root: Path
    dataset: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    workers: int = 0


@dataclass(frozen=True)
class ScheduleConfig:
    """Args:
    batch_size: images per process per micro-batch; accumulate: micro-batches per optimiser step.
    stop_at: stop after this step (the schedule still spans OptimConfig.iters); None = at the end.
    clip_grad: full-model gradient-norm clip (0 = off); amp: auto | off | bf16 | fp16.
    seed: seeds the weights, the data order and every random draw.
    """

    batch_size: int = 16
    accumulate: int = 1
    stop_at: int | None = None
    clip_grad: float = 0.01
    amp: str = "auto"
    seed: int = 0


@dataclass(frozen=True)
class EvalConfig:
    """Args: every: evaluate every N steps (0 = only at the end); limit: the first N val images only;
    short_side: test-time short side (None = native)."""

    every: int = 5000
    limit: int | None = None
    short_side: int | None = None


@dataclass(frozen=True)
class CheckpointConfig:
    """Args: every: write last.pt every N steps; resume: a checkpoint to continue from; weights:
    initial weights (official PEM or a PEM-RT .pt, of any classes: training/model/transfer.py);
    backbone_weights: an ImageNet backbone; freeze_backbone: train everything but the backbone."""

    every: int = 1000
    resume: Path | None = None
    weights: Path | None = None
    backbone_weights: Path | None = None
    freeze_backbone: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``out`` is the run folder; ``device`` None = cuda if available; ``threads``
    None = torch's choice; ``qat``: fine-tune with INT8 fake quantisation (None = plain training)."""

    model: ModelConfig
    data: DataConfig
    out: Path
    optim: OptimConfig
    augment: AugmentConfig
    loss: LossConfig = field(default_factory=LossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    device: str | None = None
    threads: int | None = None
    progress: bool = True
    qat: QatConfig | None = None  # quantisation-aware fine-tuning (training/qat.py)

    @property
    def dataset(self) -> str:
        return self.data.dataset or self.model.dataset.name

    @property
    def stop(self) -> int:
        return self.schedule.stop_at or self.optim.iters

    def validate(self) -> None:
        """One-line errors for values no run can use (named by their `pem train` flags)."""
        s, e, c = self.schedule, self.eval, self.checkpoint
        for flag, value, low in (("batch-size", s.batch_size, 1), ("accumulate", s.accumulate, 1),
                                 ("iters", self.optim.iters, 1), ("checkpoint-every", c.every, 1),
                                 ("eval-every", e.every, 0), ("workers", self.data.workers, 0),
                                 ("warmup-iters", self.optim.warmup_iters, 0)):  # fmt: skip
            if value < low:
                raise PemError(f"--{flag} must be >= {low}, got {value}")
        if e.limit is not None and e.limit < 1:
            raise PemError(f"--eval-limit must be >= 1, got {e.limit}")
        if s.stop_at is not None and not 1 <= s.stop_at <= self.optim.iters:
            raise PemError(f"--stop-at must be in 1..--iters ({self.optim.iters}), got {s.stop_at}")
        lo, hi = self.augment.scale_range
        if not 0 < lo <= hi:
            raise PemError(f"--scale-range {lo} {hi}: need 0 < MIN <= MAX")
        if self.loss.num_points < 0:
            raise PemError(f"--points must be >= 0, got {self.loss.num_points}")
        if self.model.inference.task == "instance":
            raise PemError(
                "--task instance is not trained here; train --task panoptic (instances come from it)"
            )
        if self.qat is not None and c.weights is None and c.resume is None:
            raise PemError("--qat fine-tunes a trained model for INT8: pass --weights RUN/best.pt")
        if self.qat is not None and self.qat.calib_batches < 1:
            raise PemError(f"--calib-batches must be >= 1, got {self.qat.calib_batches}")
        if c.resume is not None and not c.resume.is_file():
            raise PemError(
                f"--resume: {c.resume} does not exist; start without --resume or pass a checkpoint path"
            )

    def to_json(self) -> dict[str, object]:
        """Every setting but the model config (the checkpoint stores that) as JSON values."""
        from dataclasses import asdict

        d = asdict(self)
        d.pop("model")
        return _plain(d)  # type: ignore[return-value]


def _plain(x: object) -> object:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return str(x) if isinstance(x, Path) else x
