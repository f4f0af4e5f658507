"""The training loop: ``train(TrainConfig(...))`` (training/train_config.py); `pem train` (training/train.py)
fills the config from its flags and documents the outputs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from pem_rt.errors import PemError
from training import distributed
from training.checkpoint import Checkpoint, load_checkpoint, load_state, save_checkpoint
from training.data.loader import TrainDataset, TrainSampler, collate_train, open_dataset
from training.data.records import DatasetSource
from training.dataset_check import startup_check
from training.evaluator import EvalResult, evaluate_model
from training.losses.criterion import SetCriterion
from training.model import PEM, ModelConfig, build_model
from training.model.transfer import freeze_backbone, load_weights
from training.model.weights import load_backbone
from training.optim import build_optimizer, build_scheduler
from training.qat import calibration_images, evenly, folder_images, quantize_for_training
from training.run_log import MetricsLog, final_report
from training.train_config import TrainConfig
from training.train_step import batch_losses, gather_rng_states, mean_over_ranks, set_rng_state


def check_dataset_matches(cfg: ModelConfig, source: DatasetSource) -> None:
    if cfg.num_classes != len(source.meta.classes) or cfg.dataset.name != source.meta.name:
        raise PemError(
            f"preset {cfg.name} predicts {cfg.num_classes} {cfg.dataset.name} classes but dataset "
            f"{source.meta.name} has {len(source.meta.classes)}; use a {source.meta.name}-* preset, or an "
            "architecture (--preset tiny|stdc1|stdc2|r50) that takes the data's classes"
        )


def load_initial_weights(model: PEM, path: Path) -> str:
    """``--weights``: what fits is kept, the class head re-initialised for other classes (printed)."""
    return "\n".join(load_weights(model, path).lines())


def amp_mode(requested: str, device: torch.device) -> str:
    if requested != "auto":
        if requested != "off" and device.type != "cuda":
            raise PemError(
                f"--amp {requested} needs a GPU (torchvision's deformable convolution has no CPU "
                "half-precision kernel); use --amp off on CPU"
            )
        return requested
    if device.type != "cuda":
        return "off"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def train(config: TrainConfig) -> int:
    """Train as ``config`` says (one process, or each process of a torchrun launch); returns 0."""
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    device_name = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    info, device = distributed.setup(device_name)
    try:
        code = _train(config, info, device)
    except BaseException:
        distributed.cleanup(synchronise=False)
        raise
    distributed.cleanup()
    return code


@dataclass
class _Parts:
    """What a training step works with: the model (``net`` is its DDP wrapper, or the model itself)."""

    model: PEM
    net: nn.Module
    criterion: SetCriterion
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp: str


def _open_data(config: TrainConfig, main: bool) -> tuple[DatasetSource, DatasetSource | None]:
    panoptic = config.model.inference.task == "panoptic"
    d = config.data
    if (
        config.dataset == "custom"
    ):  # every file read once before the first step: a bad one is a clear line now
        startup_check(d.root, (d.train_split, d.val_split), config.progress and main)
    source = open_dataset(config.dataset, d.root, d.train_split, panoptic)
    check_dataset_matches(config.model, source)
    val_source = open_dataset(config.dataset, d.root, d.val_split, panoptic) if d.val_split else None
    return source, val_source


def _qat_frames(config: TrainConfig, source: DatasetSource) -> list[np.ndarray]:
    """The calibration frames of --qat: --calib-data, else the training split's images (evenly picked)."""
    assert config.qat is not None
    qat = config.qat
    if qat.calib_data is not None:
        files = folder_images(qat.calib_data, qat.calib_batches)
    else:
        files = evenly(sorted(r.image for r in source.records), qat.calib_batches)
    return calibration_images(files, config.augment.crop)


def _build_parts(
    config: TrainConfig,
    info: distributed.DistInfo,
    device: torch.device,
    log: Callable[..., None],
    source: DatasetSource,
) -> _Parts:
    cfg = config.model
    torch.manual_seed(config.schedule.seed)  # identical initial weights on every rank
    model = build_model(cfg)
    if config.checkpoint.backbone_weights:
        summary = load_backbone(model, config.checkpoint.backbone_weights).summary()
        log(f"backbone: {summary}".replace("\n", "; "))
    if config.checkpoint.weights:
        log(load_initial_weights(model, config.checkpoint.weights))
    if config.checkpoint.freeze_backbone:
        log(freeze_backbone(model))
    if config.qat is not None:
        frames = _qat_frames(config, source)
        log(quantize_for_training(model, config.qat, frames, progress=config.progress and info.main))
    model.to(device)
    if info.enabled:
        model = distributed.convert_sync_batchnorm(model, device)  # type: ignore[assignment]
    optimizer = build_optimizer(model, config.optim)
    scheduler = build_scheduler(optimizer, config.optim)
    amp = amp_mode(config.schedule.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    criterion = SetCriterion(cfg.num_classes, config.loss).to(device)
    net: nn.Module = model
    if info.enabled:
        net = DistributedDataParallel(
            model,
            device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=cfg.decoder.num_layers < 3,
        )
    return _Parts(model, net, criterion, optimizer, scheduler, scaler, amp)


def _prepare_run_dir(run_dir: Path, info: distributed.DistInfo) -> None:
    if info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(".*.pt.*.tmp"):  # left by a process killed while saving
            stale.unlink()
    distributed.barrier()


def _train(config: TrainConfig, info: distributed.DistInfo, device: torch.device) -> int:
    cfg, run_dir, resume, sched = config.model, config.out, config.checkpoint.resume, config.schedule
    if resume is None and (run_dir / "last.pt").exists():
        raise PemError(
            f"{run_dir} already holds a run (last.pt); pass --resume to continue it or another --out"
        )
    source, val_source = _open_data(config, info.main)
    log = print if info.main else (lambda *a, **k: None)
    parts = _build_parts(config, info, device, log, source)
    torch.manual_seed(sched.seed + info.rank)
    step, best = 0, {"value": -math.inf, "step": 0}
    if resume is not None:
        step, best = _restore(resume, cfg, parts, info)
        log(f"resumed from {resume} at step {step}")
    _prepare_run_dir(run_dir, info)
    train_set = TrainDataset(source, config.augment, cfg.inference.task == "panoptic")
    sampler = TrainSampler(len(source), sched.seed, info.rank, info.world)
    if len(sampler.inner) // sched.batch_size == 0:
        raise PemError(
            f"--batch-size {sched.batch_size} exceeds the {len(sampler.inner)} training images per "
            "process; lower it"
        )
    metrics = MetricsLog(run_dir, step if resume else None) if info.main else None
    crop = config.augment.crop
    log(
        f"training {cfg.name} on {config.dataset} {config.data.train_split} ({len(source)} images), "
        f"{info.world} process(es) on {device}, batch {sched.batch_size}x{sched.accumulate}x{info.world}, "
        f"crop {crop[0]}x{crop[1]}, lr {config.optim.lr:g}, amp {parts.amp}, steps {step}->{config.stop} "
        f"of {config.optim.iters}, run folder {run_dir}"
    )
    state = _Loop(config, info, device, parts, metrics)
    state.best = best
    t0 = time.perf_counter()
    last = _run_steps(state, train_set, sampler, val_source, step)
    if metrics is not None:
        metrics.close()
    if info.main:
        final_report(
            run_dir,
            f"{cfg.name}: training loss",
            (step, last, config.optim.iters),
            time.perf_counter() - t0,
            state.last_eval.table() if state.last_eval is not None else None,
            state.last_eval.summary() if state.last_eval is not None else None,
            state.best,
        )
    return 0


def _run_steps(
    state: _Loop, train_set: TrainDataset, sampler: TrainSampler, val_source: DatasetSource | None, step: int
) -> int:
    """Optimiser steps from ``step`` to the config's stop, epoch after epoch; returns the last step."""
    config = state.config
    sched, stop = config.schedule, config.stop
    micro = step * sched.accumulate
    epoch, offset = divmod(micro, len(sampler.inner) // sched.batch_size)
    bar = tqdm(
        total=stop,
        initial=step,
        disable=not state.info.main or not config.progress,
        dynamic_ncols=True,
        desc="train",
        unit="it",
    )
    while step < stop:
        sampler.set_epoch(epoch, skip=offset * sched.batch_size)
        loader = DataLoader(
            train_set,
            batch_size=sched.batch_size,
            sampler=sampler,
            drop_last=True,
            collate_fn=collate_train,
            num_workers=config.data.workers,
            pin_memory=state.device.type == "cuda",
            generator=torch.Generator().manual_seed(sched.seed + epoch),
        )
        for batch in loader:
            if state.micro_step(batch, last=(micro + 1) % sched.accumulate == 0):
                step += 1
                state.after_step(step, epoch, bar, val_source)
                if step >= stop:
                    break
            micro += 1
        epoch += 1
        offset = 0
    bar.close()
    return step


def _restore(
    path: Path, cfg: ModelConfig, parts: _Parts, info: distributed.DistInfo
) -> tuple[int, dict[str, Any]]:
    ckpt = load_checkpoint(path)
    if ckpt.config != cfg:
        raise PemError(
            f"--resume {path} was trained as {ckpt.config.name} ({ckpt.config.num_classes} classes), not "
            f"{cfg.name} ({cfg.num_classes} classes); pass the same --preset and model flags"
        )
    needed = ("optimizer", "scheduler", "step", "rng")
    if any(k not in ckpt.extra for k in needed):
        raise PemError(f"{path} has weights only, no training state; use --weights {path} to start from it")
    rngs = ckpt.extra["rng"]
    if len(rngs) != info.world:
        raise PemError(
            f"{path} was written by {len(rngs)} process(es); resume it with as many, not {info.world}"
        )
    load_state(parts.model, ckpt.model, path)
    parts.optimizer.load_state_dict(ckpt.extra["optimizer"])
    parts.scheduler.load_state_dict(ckpt.extra["scheduler"])
    if ckpt.extra.get("scaler"):
        parts.scaler.load_state_dict(ckpt.extra["scaler"])
    set_rng_state(rngs[info.rank])
    return int(ckpt.extra["step"]), dict(ckpt.extra.get("best", {"value": -math.inf, "step": 0}))


class _Loop:
    """Mutable state of the loop: accumulation, loss averages for logging, saving and evaluation."""

    def __init__(
        self,
        config: TrainConfig,
        info: distributed.DistInfo,
        device: torch.device,
        parts: _Parts,
        metrics: MetricsLog | None,
    ) -> None:
        self.config, self.info, self.device = config, info, device
        self.model, self.net, self.criterion = parts.model, parts.net, parts.criterion
        self.optimizer, self.scheduler, self.scaler, self.amp = (
            parts.optimizer,
            parts.scheduler,
            parts.scaler,
            parts.amp,
        )
        self.metrics = metrics
        self.sums = torch.zeros(4, dtype=torch.float64)
        self.count = 0
        self.tick = time.perf_counter()
        self.smooth: float | None = None
        self.best: dict[str, Any] = {}
        self.last_eval: EvalResult | None = None

    def after_step(self, step: int, epoch: int, bar: tqdm, val_source: DatasetSource | None) -> None:
        """Log the step; evaluate and checkpoint when it is time."""
        row = self.finish_step(step, epoch, bar)
        every, stop = self.config.eval.every, self.config.stop
        if val_source is not None and (step == stop or (every and step % every == 0)):
            row.update(self.evaluate(val_source, step))
        if self.metrics is not None:
            self.metrics.write(row)
        if step == stop or step % self.config.checkpoint.every == 0:
            self._write(self.config.out / "last.pt", step)

    def micro_step(self, batch: dict[str, Any], last: bool) -> bool:
        """Forward/backward one micro-batch; returns True when it completed an optimiser step."""
        pem = self.model
        sync = last or not isinstance(self.net, DistributedDataParallel)
        ctx = self.net.no_sync() if not sync else nullcontext()  # type: ignore[operator]
        with ctx:
            total, losses = batch_losses(self.net, pem, self.criterion, batch, self.device, self.amp)
            self.scaler.scale(total / self.config.schedule.accumulate).backward()
        self.sums += torch.tensor(
            [float(v.detach()) for v in (total, losses["loss_ce"], losses["loss_mask"], losses["loss_dice"])],
            dtype=torch.float64,
        )
        self.count += 1
        if not last:
            return False
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = self.config.schedule.clip_grad
        if clip > 0:
            self.grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        else:
            self.grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))  # type: ignore[union-attr]
        self.lr = self.optimizer.param_groups[-1]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return True

    def finish_step(self, step: int, epoch: int, bar: tqdm) -> dict[str, Any]:
        means = mean_over_ranks(self.sums / self.count)
        self.sums.zero_()
        self.count = 0
        now = time.perf_counter()
        sec, self.tick = now - self.tick, now
        loss = float(means[0])
        self.smooth = loss if self.smooth is None else 0.9 * self.smooth + 0.1 * loss
        bar.set_postfix(loss=f"{self.smooth:.3f}", lr=f"{self.lr:.2e}", refresh=False)
        bar.update(1)
        return {
            "step": step,
            "epoch": epoch,
            "lr": self.lr,
            "loss": loss,
            "loss_ce": float(means[1]),
            "loss_mask": float(means[2]),
            "loss_dice": float(means[3]),
            "grad_norm": self.grad_norm,
            "sec_per_it": round(sec, 4),
        }

    def evaluate(self, source: DatasetSource, step: int) -> dict[str, float | None]:
        pem = self.model
        panoptic, run_dir = self.config.model.inference.task == "panoptic", self.config.out
        result = evaluate_model(
            pem,
            source,
            panoptic,
            self.config.eval.short_side,
            self.config.eval.limit,
            shard=(self.info.rank, self.info.world),
            progress=self.config.progress,
        )
        self.last_eval = result
        s = result.summary()
        row = {"mIoU": s["mIoU"], "PQ": s["PQ"] if panoptic else None}
        key = "PQ" if panoptic else "mIoU"
        if self.info.main:
            result.write_json(run_dir / "eval" / f"step_{step:07d}.json")
            tqdm.write(
                f"step {step}: val mIoU {100 * s['mIoU']:.2f}"
                + (f"  PQ {100 * s['PQ']:.2f}" if panoptic else "")
            )
        value = s[key]
        if np.isfinite(value) and value > self.best.get("value", -math.inf):
            self.best = {"metric": key, "value": float(value), "step": step}
            self._write(run_dir / "best.pt", step)
        return row

    def _write(self, path: Path, step: int) -> None:
        rng = gather_rng_states()  # collective: every rank takes part
        if not self.info.main:
            return
        extra = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "step": step,
            "rng": rng,
            "best": self.best,
            "train_config": self.config.to_json(),
        }
        if self.config.qat is not None:  # the quantizers' ranges are in the state dict
            extra["qat"] = self.config.qat.to_json()
        pem = self.model
        save_checkpoint(path, Checkpoint(pem.cfg, self.model.state_dict(), extra))
