"""Fine-tuning vs training from scratch on your own data: steps to the from-scratch final val mIoU.

    python benchmarks/bench_finetune.py --data DIR --weights runs/tiny/best.pt --out runs/finetune \\
        -- --preset tiny --crop 128x256 --base-size 128 --batch-size 8 --iters 250 --lr 2e-3 ...

Trains the same recipe (the flags after ``--``, given to `pem train` as they are) twice, from scratch and
from ``--weights`` (any PEM checkpoint: what fits is kept, the class head re-initialised), evaluating
every ``--eval-every`` steps. Prints the from-scratch run's final val mIoU, the first step at which the
fine-tuned run reached it, and their ratio to the scratch run's steps; draws both curves in one PNG
(OUT/finetune_vs_scratch.png) and writes OUT/finetune_vs_scratch.json. ``--scratch-run DIR`` reuses a
finished from-scratch run (its metrics.csv must have evaluations). Exits 1 when the ratio is above
``--max-ratio`` (default 0.5) or the fine-tuned run never gets there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Curve:
    steps: np.ndarray
    miou: np.ndarray

    @staticmethod
    def read(run: Path) -> Curve:
        import csv

        path = run / "metrics.csv"
        if not path.is_file():
            raise SystemExit(f"error: {path} is missing; is {run} a finished `pem train` run?")
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("mIoU")]
        if not rows:
            raise SystemExit(f"error: {path} has no val mIoU; train with --eval-every N and a val split")
        return Curve(np.array([int(r["step"]) for r in rows]), np.array([float(r["mIoU"]) for r in rows]))


@dataclass(frozen=True)
class Comparison:
    target: float  # the from-scratch run's final val mIoU
    scratch_steps: int
    finetune_step: int | None  # first evaluated step with mIoU >= target
    ratio: float | None

    @staticmethod
    def of(scratch: Curve, finetune: Curve) -> Comparison:
        target, total = float(scratch.miou[-1]), int(scratch.steps[-1])
        reached = np.flatnonzero(finetune.miou >= target)
        step = int(finetune.steps[reached[0]]) if len(reached) else None
        return Comparison(target, total, step, None if step is None else step / total)


def train(run: Path, data: Path, flags: Sequence[str], eval_every: int, extra: Sequence[str] = ()) -> None:
    if (run / "summary.json").is_file():
        print(f"reusing the finished run {run}")
        return
    cmd = [sys.executable, "-m", "pem_rt.cli", "train", "--data", str(data), "--out", str(run), *flags]
    cmd += ["--eval-every", str(eval_every), *extra]
    print("$ " + " ".join(cmd[2:]), flush=True)
    if subprocess.run(cmd, check=False).returncode != 0:
        raise SystemExit(f"error: training into {run} failed (its output is above)")


def plot(scratch: Curve, finetune: Curve, cmp: Comparison, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(scratch.steps, 100 * scratch.miou, marker="o", label="from scratch")
    ax.plot(finetune.steps, 100 * finetune.miou, marker="o", label="fine-tuned from --weights")
    ax.axhline(100 * cmp.target, color="gray", ls="--", lw=1, label="from-scratch final")
    if cmp.finetune_step is not None:
        ax.axvline(cmp.finetune_step, color="tab:orange", ls=":", lw=1)
    ratio = (
        "never reached"
        if cmp.ratio is None
        else f"{cmp.finetune_step} / {cmp.scratch_steps} = {cmp.ratio:.2f}"
    )
    ax.set_title(f"steps to the from-scratch final val mIoU: {ratio}")
    ax.set_xlabel("step")
    ax.set_ylabel("val mIoU (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    flags = args_list[args_list.index("--") + 1 :] if "--" in args_list else []
    own = args_list[: args_list.index("--")] if "--" in args_list else args_list
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--data", type=Path, required=True, help="dataset folder (with dataset.yaml)")
    p.add_argument("--weights", type=Path, required=True, help="checkpoint to fine-tune from")
    p.add_argument("--out", type=Path, default=Path("runs/finetune"), help="output folder")
    p.add_argument("--eval-every", type=int, default=25, help="evaluate every N steps (default 25)")
    p.add_argument("--scratch-run", type=Path, default=None, help="reuse this finished from-scratch run")
    p.add_argument("--max-ratio", type=float, default=0.5, help="fail above this ratio (default 0.5)")
    p.add_argument(
        "--finetune-stop-at",
        type=int,
        default=None,
        help="stop the fine-tuned run at step N (its schedule still spans --iters): enough to know whether "
        "it reaches the target by then",
    )
    args = p.parse_args(own)
    scratch_run = args.scratch_run or args.out / "scratch"
    train(scratch_run, args.data, flags, args.eval_every)
    stop = ["--stop-at", str(args.finetune_stop_at)] if args.finetune_stop_at else []
    train(args.out / "finetune", args.data, flags, args.eval_every, ["--weights", str(args.weights), *stop])
    scratch, finetune = Curve.read(scratch_run), Curve.read(args.out / "finetune")
    cmp = Comparison.of(scratch, finetune)
    png = plot(scratch, finetune, cmp, args.out / "finetune_vs_scratch.png")
    result = {
        "scratch_final_miou": cmp.target,
        "scratch_steps": cmp.scratch_steps,
        "finetune_step": cmp.finetune_step,
        "ratio": cmp.ratio,
        "finetune_final_miou": float(finetune.miou[-1]),
        "scratch_curve": [[int(s), float(m)] for s, m in zip(scratch.steps, scratch.miou, strict=True)],
        "finetune_curve": [[int(s), float(m)] for s, m in zip(finetune.steps, finetune.miou, strict=True)],
    }
    (args.out / "finetune_vs_scratch.json").write_text(json.dumps(result, indent=2))
    ok = cmp.ratio is not None and cmp.ratio <= args.max_ratio
    reached = "never" if cmp.finetune_step is None else f"at step {cmp.finetune_step}"
    print(
        f"from scratch: final val mIoU {cmp.target:.4f} after {cmp.scratch_steps} steps; "
        f"fine-tuned: reached it {reached} (final {finetune.miou[-1]:.4f})"
    )
    print(f"ratio {'-' if cmp.ratio is None else f'{cmp.ratio:.3f}'} (at most {args.max_ratio}); wrote {png}")
    print(f"finetune: {'PASSED' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
