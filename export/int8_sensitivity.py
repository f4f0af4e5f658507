"""INT8 sensitivity per model part: quantise one group at a time (calibration/groups.py), the rest in FP32,
and measure its label agreement and mIoU drop against FP32 on held-out frames (export/int8_eval.py).

The ranges are calibrated once (the calibration cache) and the quantiser runs once, for the full INT8
graph with FP32 as its high precision; each group's graph keeps that graph's Q/DQ on the group's nodes
only (calibration/qdq.py), so every group is measured with the scales and placement it has in the full
INT8 graph. Groups rank by label agreement with FP32 (most labels changed first). Writes
``<prefix>.json``, ``<prefix>.md`` (the table) and ``<prefix>.png`` (the bar chart).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import onnx
from tqdm import tqdm

from calibration.calibrate import CalibrationConfig
from calibration.groups import group_nodes
from calibration.qdq import int8_nodes, restrict_int8
from export.int8_calibrate import calibrate_for_tensorrt
from export.int8_eval import Measured, Yardstick
from pem_rt.files import atomic_path, atomic_write_text
from pem_rt.lineage import SCRATCH


@dataclass(frozen=True)
class GroupResult:
    group: str
    int8_nodes: int  # nodes of the group that run in INT8 in the full INT8 graph
    measured: Measured


@dataclass(frozen=True)
class Sensitivity:
    """rows: groups with INT8 nodes, most sensitive first: the most pixels whose label changes (lowest
    agreement with FP32), then the largest mIoU drop. Agreement ranks, not the mIoU drop: on a few frames
    INT8 noise can as well raise the mIoU against ground truth, and a part that moves many labels is what
    the budget should keep out first;
    full: every group in INT8 at once; members: every group's node names (all of them)."""

    rows: tuple[GroupResult, ...]
    full: Measured
    fp32_miou: float
    frames: int
    truth: str
    members: dict[str, tuple[str, ...]]

    def ranking(self) -> list[str]:
        return [r.group for r in self.rows]

    def to_json(self) -> dict[str, Any]:
        return {
            "fp32_mIoU": self.fp32_miou,
            "frames": self.frames,
            "truth": self.truth,
            "all_int8": self.full.to_json(),
            "groups": [
                {"group": r.group, "int8_nodes": r.int8_nodes, **r.measured.to_json()} for r in self.rows
            ],
        }


def analyse(reference: Path, calib: CalibrationConfig, yardstick: Yardstick) -> Sensitivity:
    """Sensitivity of every group of ``reference`` (calibrated with ``calib``) on ``yardstick``'s frames."""
    members = {g: tuple(n) for g, n in group_nodes(onnx.load(str(reference))).items()}
    with tempfile.TemporaryDirectory() as tmp:
        full_path = Path(tmp) / "all.int8.onnx"
        calibrate_for_tensorrt(reference, full_path, replace(calib, high_precision="fp32"), role=SCRATCH)
        full = onnx.load(str(full_path))
    quantised = set(int8_nodes(full))
    rows = []
    groups = [g for g in members if quantised & set(members[g])]
    for group in tqdm(groups, desc="sensitivity", leave=False, disable=None):
        keep = quantised & set(members[group])
        rows.append(GroupResult(group, len(keep), yardstick.measure(restrict_int8(full, keep))))
    rows.sort(key=lambda r: (r.measured.agreement, -r.measured.drop))
    return Sensitivity(
        tuple(rows),
        yardstick.measure(full),
        yardstick.fp32_miou,
        len(yardstick.images),
        yardstick.truth_name,
        members,
    )


def markdown_table(sens: Sensitivity) -> str:
    lines = [
        f"INT8 sensitivity: one group in INT8, the rest FP32; {sens.frames} held-out frames, mIoU against "
        f"{sens.truth} (FP32 {sens.fp32_miou * 100:.2f})",
        "",
        "| rank | group | INT8 nodes | agreement | mIoU | mIoU drop (points) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(sens.rows, 1):
        m = r.measured
        lines.append(
            f"| {i} | {r.group} | {r.int8_nodes} | {m.agreement * 100:.2f}% | {m.miou * 100:.2f} "
            f"| {m.drop:+.2f} |"
        )
    f = sens.full
    lines.append(
        f"| | all groups | {sum(r.int8_nodes for r in sens.rows)} | {f.agreement * 100:.2f}% | "
        f"{f.miou * 100:.2f} | {f.drop:+.2f} |"
    )
    return "\n".join(lines) + "\n"


def write_chart(sens: Sensitivity, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(sens.rows)
    fig, (ax_drop, ax_agree) = plt.subplots(
        1, 2, figsize=(11, 0.34 * len(rows) + 1.6), sharey=True, gridspec_kw={"width_ratios": [1.3, 1]}
    )
    y = range(len(rows))
    ax_drop.barh(y, [r.measured.drop for r in rows], color="tab:red")
    ax_drop.axvline(sens.full.drop, color="black", linestyle="--", label=f"all INT8: {sens.full.drop:+.2f}")
    ax_drop.set_yticks(list(y), [r.group for r in rows], fontsize=8)
    ax_drop.invert_yaxis()
    ax_drop.set_xlabel("mIoU drop vs FP32 [points]")
    ax_drop.legend(fontsize=8)
    ax_agree.barh(y, [(1 - r.measured.agreement) * 100 for r in rows], color="tab:blue")
    ax_agree.set_xlabel("pixels whose label differs from FP32 [%]")
    fig.suptitle(
        f"INT8 sensitivity per group (one group in INT8, the rest FP32; {sens.frames} frames)", fontsize=10
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def report_paths(prefix: Path) -> tuple[Path, Path, Path]:
    return (
        prefix.with_name(f"{prefix.name}.json"),
        prefix.with_name(f"{prefix.name}.md"),
        prefix.with_name(f"{prefix.name}.png"),
    )


def write_report(sens: Sensitivity, prefix: Path) -> tuple[Path, Path, Path]:
    """``<prefix>.json``, ``.md`` and ``.png`` (each written atomically)."""
    js, md, png = report_paths(prefix)
    atomic_write_text(js, json.dumps(sens.to_json(), indent=2) + "\n")
    atomic_write_text(md, markdown_table(sens))
    write_chart(sens, png)
    return js, md, png
