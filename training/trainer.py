"""The training loop behind `training/train.py` (see its docstring for flags and outputs)."""

from __future__ import annotations

import argparse
import math
import time
from contextlib import nullcontext
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
from training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from training.cli_args import model_config_from_args
from training.data.choose import choose_dataset
from training.data.loader import TrainDataset, TrainSampler, collate_train, open_dataset
from training.data.records import DatasetSource
from training.data.transforms import AugmentConfig
from training.dataset_check import startup_check
from training.engine import batch_losses, gather_rng_states, mean_over_ranks, set_rng_state
from training.evaluation import EvalResult, evaluate_model
from training.losses.criterion import LossConfig, SetCriterion
from training.model import PEM, ModelConfig, build_model
from training.model.transfer import freeze_backbone, load_weights
from training.model.weights import load_backbone
from training.optim import OptimConfig, build_optimizer, build_scheduler
from training.run_log import MetricsLog, final_report
from training.train import resolve_defaults, validate


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


def resume_path(args: argparse.Namespace, run_dir: Path) -> Path | None:
    if args.resume is None:
        return None
    path = run_dir / "last.pt" if args.resume == "last" else Path(args.resume)
    if not path.is_file():
        raise PemError(f"--resume: {path} does not exist; start without --resume or pass a checkpoint path")
    return path


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


def train(args: argparse.Namespace) -> int:
    validate(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device_name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    info, device = distributed.setup(device_name)
    try:
        code = _train(args, info, device)
    except BaseException:
        distributed.cleanup(synchronise=False)
        raise
    distributed.cleanup()
    return code


def _train(args: argparse.Namespace, info: distributed.DistInfo, device: torch.device) -> int:
    dataset, data_meta = choose_dataset(args.preset, args.dataset, args.data)
    cfg = model_config_from_args(args, data_meta)
    if cfg.inference.task == "instance":
        raise PemError("--task instance is not trained here; train --task panoptic (instances come from it)")
    panoptic = cfg.inference.task == "panoptic"
    d = resolve_defaults(args, dataset)
    run_dir: Path = args.out or Path("runs") / cfg.name
    resume = resume_path(args, run_dir)
    if resume is None and (run_dir / "last.pt").exists():
        raise PemError(
            f"{run_dir} already holds a run (last.pt); pass --resume to continue it or another --out"
        )
    if dataset == "custom":  # every file read once before the first step: a bad one is a clear line now
        startup_check(args.data, (args.train_split, args.val_split), not args.no_progress and info.main)
    source = open_dataset(dataset, args.data, args.train_split, panoptic)
    check_dataset_matches(cfg, source)
    val_source = open_dataset(dataset, args.data, args.val_split, panoptic) if args.val_split else None
    log = print if info.main else (lambda *a, **k: None)

    torch.manual_seed(args.seed)  # identical initial weights on every rank
    model = build_model(cfg)
    if args.backbone_weights:
        log(f"backbone: {load_backbone(model, args.backbone_weights).summary()}".replace("\n", "; "))
    if args.weights:
        log(load_initial_weights(model, args.weights))
    if args.freeze_backbone:
        log(freeze_backbone(model))
    model.to(device)
    if info.enabled:
        model = distributed.convert_sync_batchnorm(model, device)  # type: ignore[assignment]
    optim_cfg = OptimConfig(
        lr=d["lr"],
        iters=args.iters,
        weight_decay=args.weight_decay,
        backbone_multiplier=args.backbone_lr_mult,
        warmup_iters=args.warmup_iters,
    )
    optimizer = build_optimizer(model, optim_cfg)
    scheduler = build_scheduler(optimizer, optim_cfg)
    amp = amp_mode(args.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    torch.manual_seed(args.seed + info.rank)
    step, best = 0, {"value": -math.inf, "step": 0}
    if resume is not None:
        step, best = _restore(resume, cfg, model, optimizer, scheduler, scaler, info)
        log(f"resumed from {resume} at step {step}")
    if info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(".*.pt.*.tmp"):  # left by a process killed while saving
            stale.unlink()
    distributed.barrier()

    criterion = SetCriterion(
        cfg.num_classes,
        LossConfig(
            class_weight=args.class_weight,
            mask_weight=args.mask_weight,
            dice_weight=args.dice_weight,
            no_object_weight=args.no_object_weight,
            num_points=args.points,
        ),
    ).to(device)
    net: nn.Module = model
    if info.enabled:
        net = DistributedDataParallel(
            model,
            device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=cfg.decoder.num_layers < 3,
        )
    aug = AugmentConfig(d["crop"], d["base_size"], tuple(args.scale_range), color=not args.no_color_jitter)
    train_set = TrainDataset(source, aug, panoptic)
    sampler = TrainSampler(len(source), args.seed, info.rank, info.world)
    per_epoch = len(sampler.inner) // args.batch_size
    if per_epoch == 0:
        raise PemError(
            f"--batch-size {args.batch_size} exceeds the {len(sampler.inner)} training images per process; "
            "lower it"
        )
    stop = args.stop_at or args.iters
    metrics = MetricsLog(run_dir, step if resume else None) if info.main else None
    log(
        f"training {cfg.name} on {dataset} {args.train_split} ({len(source)} images), "
        f"{info.world} process(es) on {device}, batch {args.batch_size}x{args.accumulate}x{info.world}, "
        f"crop {aug.crop[0]}x{aug.crop[1]}, lr {d['lr']:g}, amp {amp}, steps {step}->{stop} of {args.iters}, "
        f"run folder {run_dir}"
    )

    state = _Loop(args, info, device, model, net, criterion, optimizer, scheduler, scaler, amp, metrics)
    state.best = best
    t0 = time.perf_counter()
    start_step = step
    micro = step * args.accumulate
    epoch, offset = divmod(micro, per_epoch)
    bar = tqdm(
        total=stop,
        initial=step,
        disable=not info.main or args.no_progress,
        dynamic_ncols=True,
        desc="train",
        unit="it",
    )
    while step < stop:
        sampler.set_epoch(epoch, skip=offset * args.batch_size)
        loader = DataLoader(
            train_set,
            batch_size=args.batch_size,
            sampler=sampler,
            drop_last=True,
            collate_fn=collate_train,
            num_workers=args.workers,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(args.seed + epoch),
        )
        for batch in loader:
            if state.micro_step(batch, last=(micro + 1) % args.accumulate == 0):
                step += 1
                row = state.finish_step(step, epoch, bar)
                if val_source is not None and (
                    step == stop or (args.eval_every and step % args.eval_every == 0)
                ):
                    row.update(state.evaluate(val_source, panoptic, d["eval_short_side"], step, run_dir))
                if metrics is not None:
                    metrics.write(row)
                if step == stop or step % args.checkpoint_every == 0:
                    state.save(run_dir, step, cfg)
                if step >= stop:
                    break
            micro += 1
        epoch += 1
        offset = 0
    bar.close()
    elapsed = time.perf_counter() - t0
    if metrics is not None:
        metrics.close()
    if info.main:
        final_report(
            run_dir,
            f"{cfg.name}: training loss",
            (start_step, step, args.iters),
            elapsed,
            state.last_eval.table() if state.last_eval is not None else None,
            state.last_eval.summary() if state.last_eval is not None else None,
            state.best,
        )
    return 0


def _restore(
    path: Path,
    cfg: ModelConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    info: distributed.DistInfo,
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
    model.load_state_dict(ckpt.model)
    optimizer.load_state_dict(ckpt.extra["optimizer"])
    scheduler.load_state_dict(ckpt.extra["scheduler"])
    if ckpt.extra.get("scaler"):
        scaler.load_state_dict(ckpt.extra["scaler"])
    set_rng_state(rngs[info.rank])
    return int(ckpt.extra["step"]), dict(ckpt.extra.get("best", {"value": -math.inf, "step": 0}))


class _Loop:
    """Mutable state of the loop: accumulation, loss averages for logging, saving and evaluation."""

    def __init__(
        self,
        args: argparse.Namespace,
        info: distributed.DistInfo,
        device: torch.device,
        model: nn.Module,
        net: nn.Module,
        criterion: SetCriterion,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        amp: str,
        metrics: MetricsLog | None,
    ) -> None:
        self.args, self.info, self.device = args, info, device
        self.model, self.net, self.criterion = model, net, criterion
        self.optimizer, self.scheduler, self.scaler, self.amp = optimizer, scheduler, scaler, amp
        self.metrics = metrics
        self.sums = torch.zeros(4, dtype=torch.float64)
        self.count = 0
        self.tick = time.perf_counter()
        self.smooth: float | None = None
        self.best: dict[str, Any] = {}
        self.last_eval: EvalResult | None = None

    def micro_step(self, batch: dict[str, Any], last: bool) -> bool:
        """Forward/backward one micro-batch; returns True when it completed an optimiser step."""
        pem: PEM = self.model  # type: ignore[assignment]
        sync = last or not isinstance(self.net, DistributedDataParallel)
        ctx = self.net.no_sync() if not sync else nullcontext()  # type: ignore[operator]
        with ctx:
            total, losses = batch_losses(self.net, pem, self.criterion, batch, self.device, self.amp)
            self.scaler.scale(total / self.args.accumulate).backward()
        self.sums += torch.tensor(
            [float(v.detach()) for v in (total, losses["loss_ce"], losses["loss_mask"], losses["loss_dice"])],
            dtype=torch.float64,
        )
        self.count += 1
        if not last:
            return False
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.args.clip_grad > 0:
            self.grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.args.clip_grad))
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

    def evaluate(
        self, source: DatasetSource, panoptic: bool, short_side: int | None, step: int, run_dir: Path
    ) -> dict[str, float | None]:
        pem: PEM = self.model  # type: ignore[assignment]
        result = evaluate_model(
            pem,
            source,
            panoptic,
            short_side,
            self.args.eval_limit,
            rank=self.info.rank,
            world=self.info.world,
            progress=not self.args.no_progress,
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

    def save(self, run_dir: Path, step: int, cfg: ModelConfig) -> None:
        self._write(run_dir / "last.pt", step)

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
            "args": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in vars(self.args).items()
                if isinstance(v, (str, int, float, bool, Path, type(None)))
            },
        }
        pem: PEM = self.model  # type: ignore[assignment]
        save_checkpoint(path, Checkpoint(pem.cfg, self.model.state_dict(), extra))
