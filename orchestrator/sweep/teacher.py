"""The sweep's teacher: trained once per (model, data, task, settings) under ``<storage>/teachers/<key>`` and reused
by every sweep, or given (``--teacher``) and then scored on the sweep's held-out data when it has no score there."""
from __future__ import annotations

import json
from typing import Any

from orchestrator.errors import UserError
from orchestrator.sweep.tuner import WORKER_CPUS
from orchestrator.train import run_training
from search_spaces.base import STUDENT_ONLY
from trainables.model.source import model_location
from trainables.options import TrainOptions
from trainables.storage import exists, join, read_record, write_text
from trainables.tasks.registry import task_named
from trainables.trial import ACCURACY_KEY
from trainables.trial_reuse import teacher_key

TEACHER_RECORD = "teacher.json"


def teacher_options(base: dict[str, Any]) -> dict[str, Any]:
    """The full-model training run every student of the sweep distils from."""
    values = {k: v for k, v in base.items() if k not in STUDENT_ONLY and k not in ("teacher", "split")}
    return values | {"mode": "teacher"}


def ensure_teacher(base: dict[str, Any], storage: str, tracking_uri: str, experiment: str,
                   parent_run_id: str | None = None) -> dict[str, Any]:
    """Train the teacher once into ``<storage>/teachers/<key>`` (its MLflow run nested under ``parent_run_id``, the
    sweep that needed it first), or reuse the one already there."""
    from orchestrator.tracking import Tracking

    options = TrainOptions.from_dict(teacher_options(base))
    key = teacher_key(options)
    folder = join(storage, "teachers", key)
    if exists(join(folder, TEACHER_RECORD)):
        return _teacher_record(join(folder, TEACHER_RECORD), f"delete {folder} to train the teacher again")
    options = options.replace(output_dir=folder)
    print(f"[sweep] training the teacher {key} ({options.epochs} epochs on {options.data}) ...", flush=True)
    tracking = Tracking(tracking_uri, experiment, f"teacher-{key}", parent_run_id)
    result = run_training(options, tracking, storage_path=folder)
    record = {"path": str(result.checkpoint_path), "accuracy": float(result.metrics[ACCURACY_KEY]), "key": key,
              "mlflow_run_id": result.mlflow_run_id, "wall_s": result.wall_s, "train_s": result.train_s,
              "metrics": result.metrics}
    write_text(join(folder, TEACHER_RECORD), json.dumps(record, indent=1, default=str))
    return record


def _teacher_record(location: str, fix: str) -> dict[str, Any]:
    """A trained teacher's record (teacher.json); `UserError` naming the file and ``fix`` when it is broken."""
    try:
        record = read_record(location, fix)
    except ValueError as err:
        raise UserError(str(err)) from None
    lacking = [k for k in ("path", "accuracy", "key", "metrics") if k not in record]
    if lacking:
        raise UserError(f"{location}: lacks {', '.join(lacking)}; {fix}")
    return record


def given_teacher(path: str, eval_data: str | None = None) -> dict[str, Any]:
    """A teacher passed with ``--teacher`` (a directory, a bucket URI or a hub name): its accuracy is the one its
    training run recorded (metrics.json); a model without that record (a hub model) needs ``eval_data`` to be scored
    on (`rescored_teacher`), and has no accuracy until then."""
    try:
        folder = model_location(path, "--teacher")
    except ValueError as err:
        raise UserError(str(err)) from None
    metrics = join(folder, "metrics.json")
    if not exists(metrics):
        if eval_data is None:
            raise UserError(f"--teacher {path}: no metrics.json (not a `decouple train` checkpoint), so its score is "
                            "unknown; pass --eval-data for the sweep to score it there")
        return {"path": folder, "accuracy": None, "key": "given", "train_s": 0.0, "metrics": {}}
    try:
        values = read_record(metrics, "pass the checkpoint of a `decouple train` run, or --eval-data for the sweep to "
                                      "score the teacher there")
    except ValueError as err:
        raise UserError(f"--teacher {path}: {err}") from None
    if ACCURACY_KEY not in values:
        raise UserError(f"--teacher {path}: metrics.json has no {ACCURACY_KEY!r}; evaluate it with `decouple train`")
    return {"path": folder, "accuracy": float(values[ACCURACY_KEY]), "key": "given", "train_s": 0.0,
            "metrics": values}


def rescored_teacher(teacher: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """``teacher`` scored on the sweep's held-out data (``base['eval_data']``), by a Ray task holding one training
    worker's CPUs."""
    import ray

    from orchestrator.evaluate import EvalOptions, evaluate

    options = EvalOptions(model=teacher["path"], data=base["eval_data"], task=base["task"], split=0,
                          max_passage_len=base.get("max_passage_len", TrainOptions.max_passage_len),
                          doc_stride=base.get("doc_stride", TrainOptions.doc_stride), labels=base.get("labels"))
    print(f"[sweep] scoring the teacher on {base['eval_data']} ...", flush=True)
    scores = ray.get(ray.remote(num_cpus=base.get("cpus_per_worker") or WORKER_CPUS)(evaluate).remote(options))
    accuracy = scores[task_named(base["task"]).metric]
    return {**teacher, "accuracy": float(accuracy), "metrics": {**teacher["metrics"], ACCURACY_KEY: accuracy}}
