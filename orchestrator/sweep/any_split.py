"""The sweep's any-split student: for a space that asks for it (`SweepSpec.any_split`), one student trained for every
split 1..L before the trials, so that a trial at one of those splits is only scored and timed (seconds) instead of
trained (minutes). Trained once per (teacher, data, settings, splits) under ``<storage>/students/<key>`` and reused
by every sweep, as the teacher is under ``teachers/``."""
from __future__ import annotations

import json
from typing import Any

from orchestrator.train import run_training
from search_spaces.base import Target
from trainables.model.config import format_splits
from trainables.options import TrainOptions
from trainables.storage import exists, join, read_record, write_text
from trainables.trial_reuse import student_key

STUDENT_RECORD = "student.json"


def with_every_split(base: dict[str, Any], target: Target) -> dict[str, Any]:
    """The sweep's base options for an any-split space: every student split of the model in the set, so that a trial
    at split k of the set is that student cut at k (`trainables.trial_reuse.reuses_student`)."""
    return {**base, "splits": format_splits(tuple(range(1, target.num_layers + 1)))}


def ensure_student(base: dict[str, Any], storage: str, tracking_uri: str, experiment: str,
                   parent_run_id: str | None = None) -> dict[str, Any]:
    """Train the any-split student of ``base`` (which names the teacher) once into ``<storage>/students/<key>`` (its
    MLflow run nested under ``parent_run_id``), or reuse the one already there; returns its record: path, key, splits,
    the run's final metrics (held-out scores at every split, ``eval_<name>_k<split>``) and its times."""
    from orchestrator.tracking import Tracking

    options = TrainOptions.from_dict({**base, "mode": "student"})
    key = student_key(options)
    folder = join(storage, "students", key)
    if exists(join(folder, STUDENT_RECORD)):
        return read_record(join(folder, STUDENT_RECORD), f"delete {folder} to train the student again")
    options = options.replace(output_dir=folder)
    print(f"[sweep] training one any-split student {key} for splits {options.splits} ({options.epochs} epochs, "
          f"{options.splits_per_step} splits a step) ...", flush=True)
    tracking = Tracking(tracking_uri, experiment, f"student-{key}", parent_run_id)
    result = run_training(options, tracking, storage_path=folder)
    record = {"path": str(result.checkpoint_path), "key": key, "splits": list(options.any_splits),
              "mlflow_run_id": result.mlflow_run_id, "wall_s": result.wall_s, "train_s": result.train_s,
              "metrics": result.metrics}
    write_text(join(folder, STUDENT_RECORD), json.dumps(record, indent=1, default=str))
    return record
