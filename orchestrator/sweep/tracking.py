"""MLflow records of a sweep: one parent run per sweep, one nested run per trial, and the summary on the parent.

Runs are found by name before one is created (`find_or_start_run`), so a resumed sweep keeps its parent run and a
resumed trial its own run: exactly one run per trial. Everything goes through an explicit `MlflowClient` (see
`orchestrator.tracking`); plots use matplotlib's object API, never pyplot's global state.
"""
from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from orchestrator.disk_full import disk_full
from orchestrator.sweep.columns import TABLE_COLUMNS
from orchestrator.text_table import aligned
from orchestrator.tracking import PARENT_RUN_TAG, Tracking, experiment_id, log_metrics, log_params
from trainables.speed.reliability import UNRELIABLE_MARK, cores, is_reliable

SWEEP_TAG = "decouple.sweep"
TRIAL_TAG = "decouple.trial_id"
ROLE_TAG = "decouple.role"
AXIS_TITLES = {"split": "split k (layers run separately)", "compression_ratio": "compression ratio r"}
COMPARED = {"accuracy": 2, "accuracy_drop": 2, "speedup": 2, "speedup_bound": 2, "speedup_live": 2,
            "speedup_live_bound": 2, "state_bytes_per_token": 1, "speed_load": 2}
"""The figures trials are compared on, and the decimals MLflow shows of them (`for_comparison`)."""
CURVES = {"split": "curve", "compression_ratio": "ratio_curve"}
"""Axis -> prefix of the parent run's curve metrics (``curve_accuracy`` at step k, ``ratio_curve_accuracy`` at
step r)."""
CURVE_METRICS = ("accuracy", "accuracy_drop", "speedup", "speedup_bound", "state_bytes_per_token", "speed_reliable")
"""The figures each curve point carries: those of the most accurate trial at that split (or ratio)."""


def find_run(tracking: Tracking) -> str | None:
    """Id of the active run named ``tracking.run_name`` (under ``tracking.parent_run_id`` when set), else None."""
    client = MlflowClient(tracking.uri)
    name = tracking.run_name.replace("'", "\\'")
    query = f"tags.`mlflow.runName` = '{name}'"
    if tracking.parent_run_id:
        query += f" AND tags.`{PARENT_RUN_TAG}` = '{tracking.parent_run_id}'"
    runs = client.search_runs([experiment_id(tracking)], query, max_results=1, order_by=["attributes.start_time ASC"])
    return runs[0].info.run_id if runs else None


def find_or_start_run(tracking: Tracking, tags: Mapping[str, str]) -> str:
    """The run named ``tracking.run_name``: reused (set back to RUNNING) if it exists, else created with ``tags``."""
    if not tracking.run_name:
        raise ValueError("run_name: needed to find a run again; name the run")
    client = MlflowClient(tracking.uri)
    found = find_run(tracking)
    if found is not None:
        client.update_run(found, status="RUNNING")
        return found
    all_tags = dict(tags)
    if tracking.parent_run_id:
        all_tags[PARENT_RUN_TAG] = tracking.parent_run_id
    return client.create_run(experiment_id(tracking), tags=all_tags, run_name=tracking.run_name).info.run_id


def environment_tags(repo: Path) -> dict[str, str]:
    """Git commit of ``repo`` (with ``-dirty`` when it has uncommitted changes) and library versions."""
    import optuna
    import ray
    import torch
    import transformers

    return {
        "git_commit": _git_commit(repo),
        "ray_version": ray.__version__,
        "torch_version": torch.__version__,
        "optuna_version": optuna.__version__,
        "transformers_version": transformers.__version__,
    }


def _git_commit(repo: Path) -> str:
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True,
                               check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + ("-dirty" if dirty else "")


def start_sweep_run(tracking: Tracking, params: Mapping[str, Any], source: Path, tags: Mapping[str, str]) -> str:
    """The sweep's parent run (found again on resume): tags, params and the search space's source as artifact."""
    run_id = find_or_start_run(tracking, {ROLE_TAG: "sweep", **tags})
    client = MlflowClient(tracking.uri)
    if not client.get_run(run_id).data.params:
        log_params(tracking.uri, run_id, params)
        client.log_artifact(run_id, str(source), "search_space")
    return run_id


def log_summary(
    uri: str, run_id: str, rows: Sequence[dict], front: Sequence[dict], best: dict | None, teacher: Mapping[str, Any]
) -> None:
    """On the parent run: the Pareto table (JSON table + text), its plot, the split and compression curves
    (plots when the sweep varied them, and metrics against the step: `log_curves`), every trial's row, and the best
    configuration (artifact, tags, metrics)."""
    client = MlflowClient(uri)
    client.log_table(run_id, {c: [r.get(c) for r in front] for c in TABLE_COLUMNS}, "pareto_front.json")
    client.log_text(run_id, format_table(front), "pareto_front.txt")
    client.log_text(run_id, json.dumps(list(rows), indent=1, default=str), "trials.json")
    if rows:
        client.log_figure(run_id, plot_front(rows, front), "pareto_front.png")
    for axis, name in (("split", "split_curve.png"), ("compression_ratio", "compression_curve.png")):
        if len({r.get(axis) for r in rows}) > 1:
            client.log_figure(run_id, plot_curve(rows, axis, teacher), name)
    client.log_metric(run_id, "teacher_accuracy", float(teacher["accuracy"]))
    client.log_metric(run_id, "trials_finished", len(rows))
    log_curves(uri, run_id, rows)
    if best is not None:
        client.log_text(run_id, json.dumps(best, indent=1, default=str), "best_config.json")
        figures = for_comparison({k: float(best[k]) for k in ("accuracy", "accuracy_drop", "speedup",
                                                              "state_bytes_per_token")})
        log_metrics(uri, run_id, {f"best_{k}": v for k, v in figures.items()}, step=0)
        client.set_tag(run_id, "best_trial", str(best["trial"]))


def log_curves(uri: str, run_id: str, rows: Sequence[dict]) -> None:
    """The sweep's curves as metrics of its parent run, the axis as the step: for each split the most accurate trial's
    figures as ``curve_<metric>`` at step k (and, when the sweep varied the compression ratio, ``ratio_curve_<metric>``
    at step r). MLflow's chart view draws them against the step, so selecting several sweeps' parent runs overlays
    their curves."""
    for axis, prefix in CURVES.items():
        best = best_per(rows, axis)
        if axis != "split" and len(best) < 2:
            continue
        for x, row in sorted(best.items()):
            figures = for_comparison({m: row[m] for m in CURVE_METRICS if m in row})
            log_metrics(uri, run_id, {f"{prefix}_{m}": v for m, v in figures.items()}, step=int(x))


def for_comparison(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics as MLflow shows them: the figures trials are compared on (`COMPARED`) rounded to the digits that tell
    trials apart; the rest as they are."""
    return {k: round(v, COMPARED[k]) if k in COMPARED and isinstance(v, float) else v for k, v in metrics.items()}



def reconcile_trial_runs(uri: str, parent_run_id: str, trial_ids: Sequence[str]) -> None:
    """Leave exactly one run per trial of the experiment under the parent: runs of attempts Tune never recorded (the
    sweep was killed before its state was saved) are deleted, and runs of trials that will not finish (stopped early
    by ASHA, failed) still RUNNING are marked KILLED."""
    client = MlflowClient(uri)
    experiment = client.get_run(parent_run_id).info.experiment_id
    for run in client.search_runs([experiment], f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'"):
        if run.data.tags.get(TRIAL_TAG) not in trial_ids:
            client.delete_run(run.info.run_id)
        elif run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, "KILLED")


def mark_stopped(uri: str, parent_run_id: str, err: BaseException) -> None:
    """A sweep that stopped before its end on ``err`` (`orchestrator.sweep.stopping`): its parent run and the trial
    runs still RUNNING are marked KILLED after a signal (`KeyboardInterrupt`), FAILED after an error; ``--resume``
    sets them RUNNING again. After a signal, a trial run that its own trial marked FAILED once the signal came was
    failed by the stop (its training was ended under it), and is marked KILLED too. A store that cannot be written
    now (a full disk) is left as it is: the sweep's own error says why it stopped."""
    status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
    signalled_ms = 1000 * err.at if status == "KILLED" and getattr(err, "at", None) is not None else None
    try:
        client = MlflowClient(uri)
        experiment = client.get_run(parent_run_id).info.experiment_id
        for run in client.search_runs([experiment], f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'"):
            failed_by_stop = (signalled_ms is not None and run.info.status == "FAILED"
                              and (run.info.end_time or 0) >= signalled_ms)
            if run.info.status == "RUNNING" or failed_by_stop:
                client.set_terminated(run.info.run_id, status)
        client.set_terminated(parent_run_id, status)
    except Exception as error:  # ``err`` is why the sweep stopped; this is why the store could not be marked
        if disk_full(error) is None:
            raise


def format_table(rows: Sequence[dict], front: Sequence[dict] | None = None) -> str:
    """Rows as an aligned text table with `TABLE_COLUMNS`; with ``front``, a first column marks its rows with *. An
    unreliable speedup is followed by ``?`` and explained under the table (`trainables.speed.reliability`)."""
    marked = front is not None
    on_front = {r["trial"] for r in front or ()}
    titles = (["front"] if marked else []) + list(TABLE_COLUMNS)
    cells = [titles] + [
        (["*" if r["trial"] in on_front else ""] if marked else []) + [_cell(r, c) for c in TABLE_COLUMNS]
        for r in rows
    ]
    lines = aligned(cells)
    unreliable = [r for r in rows if not is_reliable(r)]
    if unreliable:
        lines.append(_unreliable_note([r["speed_load"] for r in unreliable if r.get("speed_load") is not None]))
    return "\n".join(lines)


def _unreliable_note(loads: Sequence[float]) -> str:
    seen = f" (here {min(loads):.1f} to {max(loads):.1f} on {cores()} cores)" if loads else ""
    return (f"{UNRELIABLE_MARK} = speedup not reliable: above its FLOPs bound, or timed while the load average exceeded "
            f"the machine's cores{seen}; time it again on a quiet machine (`decouple bench`)")


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    text = f"{value:.2f}" if isinstance(value, float) else "-" if value is None else str(value)
    return text + (UNRELIABLE_MARK if column == "speedup" and not is_reliable(row) else "")


def best_per(rows: Sequence[dict], axis: str) -> dict[Any, dict]:
    """The most accurate row for each value of ``axis`` (split or compression ratio) among rows that have one."""
    best: dict[Any, dict] = {}
    for r in rows:
        x = r.get(axis)
        if x is not None and (x not in best or r["accuracy"] > best[x]["accuracy"]):
            best[x] = r
    return best


def plot_front(rows: Sequence[dict], front: Sequence[dict]):
    """Accuracy against measured speedup, every trial coloured by its state bytes per token (hollow where its speed
    is unreliable); the front ringed and joined."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    sizes = [r["state_bytes_per_token"] for r in rows]
    colour = ScalarMappable(Normalize(min(sizes), max(sizes)), colormaps["viridis_r"])
    for reliable in (True, False):
        group = [r for r in rows if is_reliable(r) == reliable]
        if group:  # an unreliable speed is drawn hollow: where it sits on the x axis is not a fact
            colours = colour.to_rgba([r["state_bytes_per_token"] for r in group])
            ax.scatter([r["speedup"] for r in group], [r["accuracy"] for r in group], zorder=2, linewidths=1.5,
                       facecolors=colours if reliable else "none", edgecolors=colours,
                       label=None if reliable else f"speed unreliable ({UNRELIABLE_MARK} in the table)")
    fig.colorbar(colour, ax=ax, label="state bytes / token (cached states)")
    ordered = sorted(front, key=lambda r: r["speedup"])
    ax.plot([r["speedup"] for r in ordered], [r["accuracy"] for r in ordered], "o--", color="tab:red",
            markerfacecolor="none", markersize=12, label="Pareto front", zorder=1)
    for r in front:
        ax.annotate(str(r["trial"]), (r["speedup"], r["accuracy"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("measured speedup over the teacher (cached passages)")
    ax.set_ylabel("accuracy (F1 or acc, %)")
    ax.margins(0.12)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_curve(rows: Sequence[dict], axis: str, teacher: Mapping[str, Any]):
    """Best accuracy per value of ``axis`` (split or compression ratio) with the measured speedup on a second axis
    and the teacher's accuracy as a reference line — the shape of the Decoupled Transformer blog's figure. A sweep
    with both an any-split student and dedicated ones (``--refine``) draws the any-split curve and the dedicated
    students as separate points."""
    from matplotlib.figure import Figure

    dedicated = [r for r in rows if r.get("training") == "own"]
    both = bool(dedicated) and any(r.get("training") == "any-split" for r in rows)
    best = best_per([r for r in rows if r.get("training") != "own"] if both else rows, axis)
    xs = sorted(best)
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    ax.plot(xs, [best[x]["accuracy"] for x in xs], "o-", color="tab:blue",
            label="accuracy (any-split student)" if both else "accuracy")
    if both:
        ax.plot([r[axis] for r in dedicated], [r["accuracy"] for r in dedicated], "D", color="tab:green",
                label="dedicated student")
    ax.axhline(float(teacher["accuracy"]), color="tab:blue", linestyle=":", label="teacher")
    ax.set_xlabel(AXIS_TITLES.get(axis, axis))
    ax.set_ylabel("accuracy (F1 or acc, %)", color="tab:blue")
    ax.set_xticks(xs)
    ax.margins(0.08)
    speed = ax.twinx()
    speed.plot(xs, [best[x]["speedup"] for x in xs], "s--", color="tab:red", label="measured speedup")
    speed.plot(xs, [best[x]["speedup_bound"] for x in xs], "^:", color="tab:red", alpha=0.5, label="FLOPs bound")
    unreliable = [x for x in xs if not is_reliable(best[x])]
    if unreliable:
        speed.plot(unreliable, [best[x]["speedup"] for x in unreliable], "s", color="tab:red", markersize=9,
                   markerfacecolor="white", label="unreliable speed")
    speed.set_ylabel("speedup over the teacher", color="tab:red")
    handles = ax.get_legend_handles_labels()[0] + speed.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="upper center", ncol=4, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig
