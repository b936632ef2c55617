"""A finished sweep as files beside its Tune state: ``results.json`` and the plots, for a README or a paper.

``results.json`` records what reproduces and judges the figures: the exact command, the library versions and git
commit, the data (paths, sizes, sha256 of local files), the teacher, the machine's load while it ran, and one row per
finished trial (its settings, accuracy, drop, measured speedup, FLOPs bound, whether that speed is reliable and the
load it was timed under, state bytes per token, training seconds).
The plots are the ones the sweep's MLflow parent run holds (`orchestrator.sweep.tracking`), written as PNG files.

The record is meant to be re-run by someone else, from the directory the sweep ran in (the repository, for the
results it holds): the command reads ``decouple ...`` however the process was started, and every local path in it
(the command's arguments, the data sources, the settings, the teacher, the trials' checkpoints) is written relative
to that directory (`portable`), never as an absolute path of the machine it ran on.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.sweep.columns import ROW_FIELDS
from trainables import storage

RESULTS = "results.json"
ENTRY_MODULE = ("orchestrator", "cli.py")
"""The file behind the `decouple` console script, as the last parts of a path."""
SQLITE = "sqlite:///"
"""An MLflow sqlite URI's prefix; an absolute database path follows it after one more slash."""


def write_results(sweep_dir: str, record, report, command: Sequence[str], wall_s: float) -> list[str]:
    """Write ``results.json`` and the sweep's plots into ``sweep_dir``; returns the locations written."""
    from orchestrator.sweep.tracking import environment_tags, plot_curve, plot_front

    results = {
        "sweep": record.sweep,
        "space": portable(record.space),
        "command": shlex.join(portable_argument(arg) for arg in command),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": round(wall_s, 1),
        "environment": {**environment_tags(Path(__file__).parents[2]), "python": platform.python_version(),
                        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_average": _load()},
        "data": {k: describe_data(record.base.get(k)) for k in ("data", "eval_data")},
        "settings": {k: portable(v) for k, v in record.base.items() if k not in ("data", "eval_data")},
        "teacher": {"path": portable(record.teacher["path"]), "accuracy": record.teacher["accuracy"]},
        "trials": [_row(r) for r in sorted(report.rows, key=lambda r: (r.get("split", 0), r["trial"]))],
        "front": [r["trial"] for r in report.front],
        "recommended": None if report.best is None else report.best["trial"],
    }
    written = [storage.join(sweep_dir, RESULTS)]
    storage.write_text(written[0], json.dumps(results, indent=1, default=str) + "\n")
    figures = {"pareto_front.png": plot_front(report.rows, report.front)} if report.rows else {}
    for axis, name in (("split", "split_curve.png"), ("compression_ratio", "compression_curve.png")):
        if len({r.get(axis) for r in report.rows}) > 1:
            figures[name] = plot_curve(report.rows, axis, record.teacher)
    for name, figure in figures.items():
        written.append(storage.join(sweep_dir, name))
        storage.write_bytes(written[-1], _png(figure))
    return written


def describe_data(source: str | None) -> dict[str, Any] | None:
    """A data source as recorded: its name (a local path relative to the working directory), and for a local file
    its size and sha256 (so a reader can tell the exact file apart from another with the same name)."""
    if source is None:
        return None
    path = Path(source)
    if not path.is_file():
        return {"source": portable(source)}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"source": portable(source), "bytes": path.stat().st_size, "sha256": digest}


def portable(value: Any) -> Any:
    """``value`` as another machine can use it: an absolute local path (also inside a ``sqlite:///`` URI) becomes
    relative to the working directory, ``../`` where it lies outside it; relative paths, bucket URIs, hub names and
    anything not a string are returned as they are."""
    if not isinstance(value, str):
        return value
    if value.startswith(SQLITE):
        return SQLITE + portable(value[len(SQLITE):])
    return os.path.relpath(value) if os.path.isabs(value) else value


def portable_argument(arg: str) -> str:
    """A command-line argument made `portable`, the value of a ``--flag=value`` form included."""
    flag, equals, value = arg.partition("=")
    if arg.startswith("-") and equals:
        return flag + equals + portable(value)
    return portable(arg)


def _row(row: Mapping[str, Any]) -> dict[str, Any]:
    first = {k: _rounded(row[k]) for k in ROW_FIELDS if k in row}
    rest = {k: _rounded(v) for k, v in row.items() if k not in first and k not in ("checkpoint", "mlflow_run_id")}
    return {**first, **rest, "checkpoint": portable(row.get("checkpoint"))}


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _png(figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def command_line() -> list[str]:
    """How this process was started, as a user would type it: ``decouple ...`` whether it was started by the console
    script, as ``python -m orchestrator.cli`` (Python puts cli.py's path in ``sys.argv[0]``) or by a path to cli.py."""
    argv = list(sys.argv)
    if argv and (Path(argv[0]).name == "decouple" or Path(argv[0]).parts[-2:] == ENTRY_MODULE):
        argv[0] = "decouple"
    return argv
