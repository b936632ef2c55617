"""`decouple report SWEEP`: a sweep's Pareto table and the fastest configuration within an accuracy/size budget.

``SWEEP`` is a sweep directory or bucket URI (``<storage>/<sweep name>``, printed at the end of `decouple sweep`). Rows come from
the Tune experiment state: one per trial that finished (trials stopped early by ASHA or failed are counted, not
ranked: their accuracy is from fewer epochs or missing).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.errors import UserError
from orchestrator.sweep.columns import ROW_METRICS, ROW_SETTINGS
from orchestrator.sweep.pareto import FRONT_OBJECTIVES, Budget, credited_speedup, pareto_front, recommend
from orchestrator.sweep.record import REFINE, SweepRecord
from trainables.speed.reliability import UNRELIABLE_MARK, is_reliable
from trainables.storage import exists, join

DEFAULT_BUDGET = Budget()


@dataclass
class SweepReport:
    """Rows of the finished trials, their Pareto front, the recommendation, and what was left out."""

    sweep_dir: str
    teacher: dict[str, Any]
    rows: list[dict[str, Any]]
    front: list[dict[str, Any]]
    best: dict[str, Any] | None
    budget: Budget
    unfinished: dict[str, int]
    trial_ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "budget": asdict(self.budget), "overhead": overhead(self.rows)}


def trial_row(trial_id: str, config: dict[str, Any], last: dict[str, Any]) -> dict[str, Any] | None:
    """One finished trial as a flat row (sampled parameters, settings, metrics); None if it did not finish."""
    if "trial_wall_s" not in last:
        return None
    row = {"trial": trial_id, **config}
    row |= {k: last[k] for k in ROW_SETTINGS + ROW_METRICS if k in last}
    row["checkpoint"] = last.get("checkpoint_path")
    row["mlflow_run_id"] = last.get("mlflow_run_id")
    return row


def load_rows(sweep_dir: str) -> tuple[list[dict[str, Any]], dict[str, int], list[str]]:
    """Rows of the finished trials of a sweep (its Tune experiment, and its dedicated students' when ``--refine``
    trained some), counts of the others by status, every trial id."""
    from ray.tune import ExperimentAnalysis


    try:
        trials = list(ExperimentAnalysis(str(sweep_dir)).trials)
    except ValueError:
        message = f"{sweep_dir}: no Tune experiment state; pass a sweep directory (<storage>/<sweep name>)"
        raise UserError(message) from None
    if exists(join(str(sweep_dir), REFINE)):
        trials += ExperimentAnalysis(join(str(sweep_dir), REFINE)).trials
    rows, others = [], {}
    for trial in sorted(trials, key=lambda t: t.trial_id):
        row = trial_row(trial.trial_id, dict(trial.config), dict(trial.last_result or {}))
        if row is None:
            status = "STOPPED_EARLY" if trial.status == "TERMINATED" else trial.status
            others[status] = others.get(status, 0) + 1
        else:
            rows.append(row)
    return rows, others, sorted(t.trial_id for t in trials)


def overhead(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """Mean seconds per trained trial: wall time inside the trial, training steps, and the rest (Tune's and Ray
    Train's start-up, data loading, evaluation, the speed measurement, checkpoints, MLflow). None if none trained."""
    trained = [r for r in rows if r.get("trial_train_s", 0) > 0]
    if not trained:
        return None
    wall = sum(r["trial_wall_s"] for r in trained) / len(trained)
    train = sum(r["trial_train_s"] for r in trained) / len(trained)
    return {"trials": len(trained), "trial_wall_s": wall, "train_s": train, "overhead_s": wall - train}


def build_report(sweep_dir: str, budget: Budget = DEFAULT_BUDGET) -> SweepReport:
    """The report of the sweep in ``sweep_dir``."""
    record = SweepRecord.load(sweep_dir)
    rows, others, trial_ids = load_rows(sweep_dir)
    return SweepReport(sweep_dir, record.teacher, rows, pareto_front(rows, FRONT_OBJECTIVES),
                       recommend(rows, budget), budget, others, trial_ids)


def format_report(report: SweepReport) -> str:
    """The Pareto table, the teacher line and the recommendation, as text."""
    from orchestrator.sweep.tracking import format_table

    b = report.budget
    limits = ", ".join(part for part in (
        None if b.max_drop is None else f"accuracy drop <= {b.max_drop:g}",
        None if b.min_speedup is None else f"speedup >= {b.min_speedup:g}",
        None if b.max_state_bytes_per_token is None else f"states <= {b.max_state_bytes_per_token:g} B/token",
    ) if part) or "no limits"
    skipped = ", ".join(f"{n} {status.lower()}" for status, n in sorted(report.unfinished.items()))
    lines = [
        f"sweep {report.sweep_dir}: {len(report.rows)} finished trials"
        + (f" ({skipped} not ranked)" if skipped else ""),
        f"teacher {report.teacher['path']}: accuracy {report.teacher['accuracy']:.2f} (speedup 1.00 by definition)",
        "",
        "finished trials, fastest first (* = on the Pareto front: accuracy up, measured speedup up, state bytes/token "
        "down):",
        format_table(sorted(report.rows, key=lambda r: -r["speedup"]), report.front) if report.rows
        else "  (no finished trials)",
        "",
    ]
    cost = overhead(report.rows)
    if cost is not None:
        lines += [f"per trained trial (mean of {cost['trials']}): {cost['trial_wall_s']:.1f} s wall, "
                  f"{cost['train_s']:.1f} s in training steps, {cost['overhead_s']:.1f} s overhead", ""]
    if report.best is None:
        lines.append(f"no configuration faster than the teacher within the budget ({limits}): keep the teacher, or "
                     "widen the budget (`decouple report --max-drop`)")
    else:
        settings = {k: v for k, v in report.best.items()
                    if k not in ROW_METRICS and k not in ("trial", "checkpoint", "mlflow_run_id")}
        unreliable = "" if is_reliable(report.best) else (
            f", not reliable ({UNRELIABLE_MARK} above; ranked at {credited_speedup(report.best):.2f}x)")
        lines += [
            f"recommended within the budget ({limits}): trial {report.best['trial']} — "
            f"{report.best['speedup']:.2f}x measured{unreliable} ({report.best['speedup_bound']:.2f}x FLOPs bound), "
            f"accuracy {report.best['accuracy']:.2f} (drop {report.best['accuracy_drop']:.2f}), "
            f"{report.best['state_bytes_per_token']:.0f} state bytes/token",
            f"  settings: {json.dumps(settings, default=str)}",
            f"  checkpoint: {report.best['checkpoint']}" + (
                f" (the sweep's any-split student: pass --split {report.best['split']})"
                if report.best.get("training") == "any-split" else ""),
        ]
    return "\n".join(lines)
