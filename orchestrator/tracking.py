"""MLflow bookkeeping with explicit ids: where runs go, and how params, metrics and artifacts reach them.

Everything goes through an `MlflowClient` built from the URI given, never the fluent API: `mlflow.set_experiment`
sets the process-wide ``MLFLOW_EXPERIMENT_ID`` that later helpers silently prefer, which breaks nested sweep runs.
MLflow 3.x refuses ``file:`` stores, so the local default is a sqlite database (`default_tracking_uri`).
"""
from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH
from ray.train import UserCallback

from trainables.storage import is_uri

SQLITE_PREFIX = "sqlite:///"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
"""The experiment kind MLflow 3's UI opens as "Model training" (the run table and charts); an experiment without
the tag is guessed from its first runs and may open under "GenAI"."""
PARENT_RUN_TAG = "mlflow.parentRunId"


PROJECT_RUNS = "runs"
"""The project's run folder (relative to the working directory): its ``mlflow.db`` is every command's default store,
so a teacher, its students and the sweeps over them are compared in one MLflow UI."""


def project_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else the project's store ``sqlite:///<cwd>/runs/mlflow.db`` (its folder
    made here: sqlite creates the file, not the folder)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    Path(PROJECT_RUNS).mkdir(exist_ok=True)
    return default_tracking_uri(PROJECT_RUNS)


def default_tracking_uri(root: str | Path) -> str:
    """``sqlite:///<abs root>/mlflow.db`` — the embedded store (the database file is created on first use). A bucket
    ``root`` has no place for it: ValueError naming ``--tracking-uri``."""
    if is_uri(root):
        raise ValueError(f"--tracking-uri: {root} is a bucket, and the default sqlite store needs a local directory; "
                         "pass an MLflow server, e.g. http://127.0.0.1:5000")
    return SQLITE_PREFIX + str((Path(root) / "mlflow.db").resolve())


DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
"""SQLAlchemy stores MLflow takes (with a driver suffix too, e.g. postgresql+psycopg2)."""
SERVER_SCHEMES = ("http", "https")
REACH_TIMEOUT_S = 3.0


def check_tracking_uri(uri: str) -> None:
    """Before Ray starts: ValueError in one line (naming ``--tracking-uri``) for a store MLflow cannot use, an
    unknown scheme, or a server that does not answer its health check within a few seconds (MLflow itself retries
    for minutes in silence)."""
    import urllib.error
    import urllib.request

    scheme = uri.partition("://")[0].split("+")[0] if "://" in uri else ""
    if scheme not in DATABASE_SCHEMES + SERVER_SCHEMES:
        raise ValueError(f"--tracking-uri {uri!r}: MLflow cannot record there; use sqlite:///abs/path/mlflow.db, "
                         "an MLflow server http(s)://host:port, or a database (postgresql://, mysql://)")
    if scheme not in SERVER_SCHEMES:
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=REACH_TIMEOUT_S) as answer:
            answer.read()
    except urllib.error.HTTPError:
        return  # a server answered (a proxy may hide /health): MLflow's own errors are clear enough from here
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ValueError(f"--tracking-uri {uri}: no MLflow server answers there ({reason}); start one "
                         "(mlflow server --host 127.0.0.1 --port 5000) or pass another URI") from None


def ready_store(uri: str) -> None:
    """Create (or upgrade) a sqlite store now, holding a lock file beside it: MLflow migrates a new database's schema
    on first use, and two commands started at once against a new store both migrated it, one dying on "duplicate
    column name". A new store whose creation failed (a full disk) is removed again: left half-made, every later
    command against it failed on "table ... already exists". Other stores are left to MLflow."""
    import fcntl

    if not uri.startswith(SQLITE_PREFIX):
        return
    path = Path(uri[len(SQLITE_PREFIX):])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / (path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        new = not path.exists() or path.stat().st_size == 0
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        except Exception:
            if new:
                path.unlink(missing_ok=True)
            raise


@dataclass(frozen=True)
class Tracking:
    """Where one training run is recorded."""

    uri: str
    """Tracking URI: ``sqlite:///path/mlflow.db`` (a relative path is made absolute here) or ``http(s)://host:port``."""
    experiment: str
    """Experiment name; created on first use."""
    run_name: str | None = None
    """Display name of the run; None lets MLflow pick one."""
    parent_run_id: str | None = None
    """Makes the run a nested child of this run (e.g. one trial of a sweep)."""

    def __post_init__(self) -> None:
        scheme = self.uri.partition("://")[0] if "://" in self.uri else ""
        if not scheme or scheme == "file":
            raise ValueError(
                f"uri={self.uri!r}: MLflow 3.x refuses file stores; use {SQLITE_PREFIX}/abs/path/mlflow.db "
                "(default_tracking_uri) or http://host:port"
            )
        if self.uri.startswith(SQLITE_PREFIX) and not self.uri.startswith(SQLITE_PREFIX + "/"):
            # Ray workers and the Train controller run in other working directories: pin the file now.
            object.__setattr__(self, "uri", SQLITE_PREFIX + str(Path(self.uri[len(SQLITE_PREFIX):]).resolve()))
        if not self.experiment.strip():
            raise ValueError("experiment: empty; name the MLflow experiment, e.g. decoupled-train")


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Next to a sqlite database: ``<db dir>/mlartifacts/<experiment>``; servers choose their own."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)
    return (Path(uri[len(SQLITE_PREFIX):]).parent / "mlartifacts" / folder).as_uri()


def experiment_id(tracking: Tracking) -> str:
    """Id of ``tracking.experiment``, created if missing (safe when several trials create it at once)."""
    client = MlflowClient(tracking.uri)
    found = client.get_experiment_by_name(tracking.experiment)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(
            tracking.experiment, artifact_location=_artifact_location(tracking.uri, tracking.experiment),
            tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING},
        )
    except MlflowException:
        found = client.get_experiment_by_name(tracking.experiment)
        if found is None:
            raise
        return found.experiment_id


def start_run(tracking: Tracking, tags: Mapping[str, str] | None = None) -> str:
    """Create a run (nested under ``parent_run_id`` when set) and return its id; the caller ends it (`end_run`)."""
    all_tags = dict(tags or {})
    if tracking.parent_run_id:
        all_tags[PARENT_RUN_TAG] = tracking.parent_run_id
    run = MlflowClient(tracking.uri).create_run(experiment_id(tracking), tags=all_tags, run_name=tracking.run_name)
    return run.info.run_id


def flatten(values: Mapping[str, object], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> ``{"a.b": "value"}`` with every value as text (None as ``"None"``)."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=name + "."))
        else:
            flat[name] = str(value)
    return flat


def log_params(uri: str, run_id: str, params: Mapping[str, object]) -> None:
    """Log ``params`` flattened (nested keys joined with dots; values cut to MLflow's length limit)."""
    items = [Param(k, v[:MAX_PARAM_VAL_LENGTH]) for k, v in flatten(params).items()]
    client = MlflowClient(uri)
    for lo in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=items[lo: lo + MAX_PARAMS_TAGS_PER_BATCH])


def log_metrics(uri: str, run_id: str, metrics: Mapping[str, object], step: int) -> None:
    """Log the finite numeric entries of ``metrics`` at ``step`` (anything else is not a metric and is left out)."""
    now = int(time.time() * 1000)
    items = [
        Metric(k, float(v), now, step)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
    client = MlflowClient(uri)
    for lo in range(0, len(items), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=items[lo: lo + MAX_METRICS_PER_BATCH])


def log_artifact(uri: str, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    """Upload a file or a whole directory to the run, under ``artifact_path``."""
    client = MlflowClient(uri)
    path = Path(path)
    if path.is_dir():
        client.log_artifacts(run_id, str(path), artifact_path)
    else:
        client.log_artifact(run_id, str(path), artifact_path)


def log_text(uri: str, run_id: str, text: str, artifact_file: str) -> None:
    """Store ``text`` as the run's artifact ``artifact_file`` (e.g. ``bench.json``)."""
    MlflowClient(uri).log_text(run_id, text, artifact_file)


def end_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Mark the run FINISHED / FAILED / KILLED."""
    MlflowClient(uri).set_terminated(run_id, status)


class MlflowEpochMetrics(UserCallback):
    """Ray Train callback, run on the controller: logs rank 0's metrics of every report to a run, step = epoch."""

    def __init__(self, uri: str, run_id: str):
        self.uri, self.run_id = uri, run_id

    def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
        first = metrics[0]
        log_metrics(self.uri, self.run_id, first, step=int(first["epoch"]))
