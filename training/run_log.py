"""Run-folder logs: metrics.csv (one row per optimiser step, eval columns filled at eval steps),
TensorBoard events when the tensorboard package is installed, and the loss-curve PNG."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = (
    "step",
    "epoch",
    "lr",
    "loss",
    "loss_ce",
    "loss_mask",
    "loss_dice",
    "grad_norm",
    "sec_per_it",
    "mIoU",
    "PQ",
)


class MetricsLog:
    """Append-only CSV; on resume, rows after the resumed step are dropped (they were never saved)."""

    def __init__(self, run_dir: Path, resume_step: int | None, tensorboard: bool = True) -> None:
        self.path = run_dir / "metrics.csv"
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.file = open(self.path, "w", newline="")  # noqa: SIM115 (kept open for the run)
        self.writer = csv.DictWriter(self.file, fieldnames=COLUMNS)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.file.flush()
        self.tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step)
            except ImportError:
                self.tb = None

    def write(self, row: dict[str, float | int | None]) -> None:
        self.writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
        self.file.flush()
        if self.tb is not None:
            step = int(row["step"] or 0)
            for k, v in row.items():
                if k not in ("step", "epoch") and v is not None and math.isfinite(float(v)):
                    self.tb.add_scalar(("val/" if k in ("mIoU", "PQ") else "train/") + k, float(v), step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv -> column arrays (NaN where a row has no value)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {c: np.array([float(r[c]) if r.get(c) else np.nan for r in rows]) for c in COLUMNS}


def smoothed_bins(values: np.ndarray, bins: int = 5) -> np.ndarray:
    """Means of ``bins`` consecutive equal chunks: the smoothed curve a learning check reads.

    Five windows (50 steps each in the 250-step demo recipe): the per-step loss of small random batches
    has enough noise that 25-step means of a plateauing loss can tick up by a few tenths of a percent
    without any change in the trend; 50-step means follow the trend.
    """
    values = values[np.isfinite(values)]
    if len(values) < bins:
        return values
    return np.array([chunk.mean() for chunk in np.array_split(values, bins)])


def ema(values: np.ndarray, alpha: float) -> np.ndarray:
    out = np.empty_like(values)
    acc = values[0] if len(values) else 0.0
    for i, v in enumerate(values):
        acc = alpha * v + (1 - alpha) * acc
        out[i] = acc
    return out


def plot_curves(metrics_csv: Path, out_png: Path, title: str) -> Path:
    """Loss (raw and smoothed), learning rate, and validation mIoU/PQ against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = read_metrics(metrics_csv)
    steps, loss = m["step"], m["loss"]
    fig, (ax, ax_eval) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax.plot(steps, loss, color="tab:blue", alpha=0.3, lw=1, label="loss")
    if len(loss):
        ax.plot(
            steps, ema(loss, 2.0 / (max(len(loss) // 20, 1) + 1)), color="tab:blue", lw=2, label="loss (EMA)"
        )
    ax.set_xlabel("step")
    ax.set_ylabel("total loss (all predictions)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    lr_ax = ax.twinx()
    lr_ax.plot(steps, m["lr"], color="tab:gray", ls="--", lw=1, label="lr")
    lr_ax.set_ylabel("learning rate")
    lines = ax.get_legend_handles_labels()[0] + lr_ax.get_legend_handles_labels()[0]
    ax.legend(lines, [str(line.get_label()) for line in lines], loc="upper right")
    ax.set_title(title)
    for key, colour in (("mIoU", "tab:green"), ("PQ", "tab:purple")):
        ok = np.isfinite(m[key])
        if ok.any():
            ax_eval.plot(steps[ok], 100 * m[key][ok], marker="o", color=colour, label=key)
    ax_eval.set_xlim(0, max(float(np.nanmax(steps)) if len(steps) else 1.0, 1.0))
    ax_eval.set_xlabel("step")
    ax_eval.set_ylabel("validation (%)")
    ax_eval.set_ylim(0, 100)
    ax_eval.grid(alpha=0.3)
    if ax_eval.get_legend_handles_labels()[0]:
        ax_eval.legend(loc="lower right")
    ax_eval.set_title("validation")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def final_report(
    run_dir: Path,
    title: str,
    steps: tuple[int, int, int],
    elapsed: float,
    eval_table: str | None,
    eval_summary: dict[str, float] | None,
    best: dict[str, Any],
) -> None:
    """End of a run: loss-curve PNG, smoothed-loss check, last evaluation, summary.json.

    ``steps`` = (first step of this process, last step, scheduled steps).
    """
    start, step, iters = steps
    png = plot_curves(run_dir / "metrics.csv", run_dir / "loss_curve.png", title)
    bins = smoothed_bins(read_metrics(run_dir / "metrics.csv")["loss"])
    monotonic = bool(len(bins) > 1 and np.all(np.diff(bins) < 0))
    print(
        f"trained steps {start}->{step} in {elapsed:.1f} s ({(step - start) / max(elapsed, 1e-9):.2f} it/s)"
    )
    print(
        "smoothed loss (10 equal chunks): "
        + " > ".join(f"{b:.3f}" for b in bins)
        + f"  (monotonically decreasing: {'yes' if monotonic else 'no'})"
    )
    if eval_table is not None and eval_summary is not None:
        print(eval_table)
        pq = f"  PQ: {eval_summary['PQ']:.4f}" if "PQ" in eval_summary else ""
        print(f"final val mIoU: {eval_summary['mIoU']:.4f}{pq}")
    if step < iters:
        print(f"stopped at step {step} of {iters}; continue with --resume")
    summary = {
        "steps": step,
        "seconds": round(elapsed, 2),
        "smoothed_loss": bins.tolist(),
        "loss_monotonic": monotonic,
        "best": best,
        "final": eval_summary,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"wrote {run_dir / 'last.pt'}, {png}, {run_dir / 'metrics.csv'}")
