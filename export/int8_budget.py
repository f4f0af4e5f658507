"""An INT8 graph within an accuracy budget: ``--max-miou-drop D`` on `pem calibrate` and `pem build-engine`.

Greedy and measured: start from the full INT8 graph; while its mIoU drop against FP32 on the held-out
frames is above D, keep the next most sensitive group (export/int8_sensitivity.py) out of INT8 (in the
high precision, FP16 by default) and quantise again with the real quantiser and the same calibration
cache. Every candidate is measured with ONNX Runtime; the first within D is written, with the groups kept
out and its measured drop in the graph's metadata (``pem.int8_excluded_groups``, ``pem.int8_budget``),
which `pem build-engine` copies into the engine's sidecar. When even every group out of INT8 misses D,
it fails in one line.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import onnx

from calibration.calibrate import CalibrationConfig, CalibrationResult
from export.int8_calibrate import calibrate_for_tensorrt
from export.int8_eval import HeldOut, Measured, Yardstick, calibration_frames
from export.int8_sensitivity import Sensitivity, analyse, report_paths, write_report
from pem_rt.errors import PemError
from pem_rt.files import atomic_path
from pem_rt.lineage import INT8
from pem_rt.paths import check_output_file

EXCLUDED_KEY = "pem.int8_excluded_groups"
BUDGET_KEY = "pem.int8_budget"


@dataclass(frozen=True)
class BudgetStep:
    excluded: tuple[str, ...]
    measured: Measured


@dataclass(frozen=True)
class BudgetResult:
    out: Path
    excluded: tuple[str, ...]  # groups kept out of INT8, most sensitive first
    measured: Measured  # of the graph written to ``out``
    steps: tuple[BudgetStep, ...]
    calibration: CalibrationResult


def group_patterns(sens: Sensitivity, groups: tuple[str, ...]) -> tuple[str, ...]:
    """Exact-name regular expressions of every node of ``groups`` (ModelOpt's nodes_to_exclude)."""
    return tuple(f"^{re.escape(name)}$" for g in groups for name in sens.members[g])


def within_budget(
    reference: Path,
    out: Path,
    calib: CalibrationConfig,
    yardstick: Yardstick,
    sens: Sensitivity,
    max_drop: float,
    role: str = INT8,
) -> BudgetResult:
    """The INT8 graph of ``reference`` with the fewest most sensitive groups out of INT8 whose measured
    mIoU drop is at most ``max_drop`` points, written to ``out``; PemError when none is."""
    ranking = sens.ranking()
    steps: list[BudgetStep] = []
    with tempfile.TemporaryDirectory() as tmp:

        def measure(k: int) -> tuple[Path, CalibrationResult, Measured]:
            groups = tuple(ranking[:k])
            candidate = Path(tmp) / f"out{k}.int8.onnx"
            config = replace(calib, exclude=(*calib.exclude, *group_patterns(sens, groups)))
            with contextlib.redirect_stdout(io.StringIO()) if steps else contextlib.nullcontext():
                result = calibrate_for_tensorrt(reference, candidate, config, role=role)
            measured = yardstick.measure(candidate)
            steps.append(BudgetStep(groups, measured))
            print(
                f"budget: {k} of {len(ranking)} model parts out of INT8"
                f"{' (last: ' + groups[-1] + ')' if groups else ''}: mIoU drop {measured.drop:+.2f} points, "
                f"agreement {measured.agreement * 100:.2f}%"
            )
            return candidate, result, measured

        def done(k: int, found: tuple[Path, CalibrationResult, Measured]) -> BudgetResult:
            groups = tuple(ranking[:k])
            _write(found[0], out, groups, found[2], max_drop, len(yardstick.images))
            return BudgetResult(out, groups, found[2], tuple(steps), found[1])

        # the full INT8 graph; then every part out (when even that misses, nothing will: fail fast);
        # then one, two, ... of the most sensitive parts out: the first that fits is the fewest
        full = measure(0)
        if full[2].drop <= max_drop:
            return done(0, full)
        if ranking:
            all_out = measure(len(ranking))
            if all_out[2].drop <= max_drop:
                for k in range(1, len(ranking)):
                    found = measure(k)
                    if found[2].drop <= max_drop:
                        return done(k, found)
                return done(len(ranking), all_out)
    best = min(steps, key=lambda s: s.measured.drop)
    raise PemError(
        f"--max-miou-drop {max_drop}: no INT8 mix meets it (best {best.measured.drop:.2f} points, with "
        f"{len(best.excluded)} of {len(ranking)} model parts out of INT8); allow a larger drop, calibrate on "
        "frames like the deployment's, or fine-tune for INT8 with `pem train --qat`"
    )


def _write(
    candidate: Path, out: Path, groups: tuple[str, ...], measured: Measured, max_drop: float, frames: int
) -> None:
    model = onnx.load(str(candidate))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in (EXCLUDED_KEY, BUDGET_KEY)]
    del model.metadata_props[:]
    budget = {"max_miou_drop": max_drop, "frames": frames, **measured.to_json()}
    for key, value in [*kept, (EXCLUDED_KEY, json.dumps(list(groups))), (BUDGET_KEY, json.dumps(budget))]:
        model.metadata_props.add(key=key, value=value)
    with atomic_path(out) as tmp:
        onnx.save(model, tmp)


def budget_props(props: dict[str, str]) -> tuple[tuple[str, ...], dict[str, float] | None]:
    """(groups kept out of INT8, the budget record) an INT8 graph's metadata holds; ((), None) for a
    graph made without --max-miou-drop."""
    try:
        groups = tuple(str(g) for g in json.loads(props.get(EXCLUDED_KEY, "[]")))
        budget = json.loads(props[BUDGET_KEY]) if BUDGET_KEY in props else None
    except (json.JSONDecodeError, TypeError):
        return (), None
    return groups, budget


@dataclass(frozen=True)
class BudgetRequest:
    """``--max-miou-drop`` (points) and the held-out frames it is measured on."""

    max_drop: float
    held_out: HeldOut


def calibrate_within_budget(
    reference: Path, out: Path, calib: CalibrationConfig, request: BudgetRequest, role: str = INT8
) -> BudgetResult:
    """Sensitivity (its report beside ``out``: ``<out stem>.sensitivity.{json,md,png}``), then
    :func:`within_budget`."""
    for path in report_paths(sensitivity_prefix(out)):
        check_output_file(path, "--out", "model.int8.onnx")
    yardstick = Yardstick(
        reference, request.held_out, calibration_frames(calib.data, reference, calib.batches)
    )
    sens = analyse(reference, calib, yardstick)
    paths = write_report(sens, sensitivity_prefix(out))
    print(f"wrote the INT8 sensitivity table {paths[1]} and chart {paths[2]}")
    return within_budget(reference, out, calib, yardstick, sens, request.max_drop, role)


def sensitivity_prefix(graph: Path) -> Path:
    """Where the sensitivity report of an INT8 graph goes: ``m.int8.onnx`` -> ``m.int8.sensitivity``."""
    return graph.with_name(f"{graph.stem}.sensitivity")
