"""What a sweep trial takes from earlier runs instead of doing it again: the sweep's teacher (a split-0 trial trained
like it is it), its own interrupted attempt (the newest unfinished epoch checkpoint), and its architecture's speed
figures (kept under a key of what they depend on). Plain functions of the options and storage: the trial, on the
head beside its Ray Train run, and the driver both call them."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from trainables import storage
from trainables.options import SPEED, STUDENT, TEACHER, fields_with
from trainables.speed.trial import BenchSettings
from trainables.training.config import TRAINER_STATE


def teacher_key(options) -> str:
    """Stable name of a full-model training run: a hash of the `TrainOptions` that shape its weights (where it
    writes, and what only students use, left out: the fields without the `TEACHER` role). A split-0 trial with the
    teacher's key is the teacher."""
    shaping = {k: v for k, v in sorted(options.to_dict().items()) if k in fields_with(TEACHER)}
    return hashlib.sha1(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:12]


def reuses_teacher(options, teacher: Mapping[str, Any], student: Mapping[str, Any] | None = None) -> bool:
    """Whether the trial takes the sweep's ``teacher`` (its record) instead of training: a split-0 trial that would
    train exactly it again (same settings), and any split-0 trial of a sweep with an any-split ``student`` (its
    record), whose curve starts at the model its students distil from, given or trained."""
    return options.mode == "teacher" and (student is not None or teacher_key(options) == teacher["key"])


def student_key(options) -> str:
    """Stable name of an any-split student's training run: a hash of the `TrainOptions` that shape a student's weights
    (the teacher's, the students', the teacher it distils from, and the set of splits), the split it is cut at left
    out. A trial whose options have the key, at a split of the set, is scored on that student."""
    shaping = fields_with(TEACHER) | fields_with(STUDENT) | {"teacher"}
    values = {k: v for k, v in sorted(options.to_dict().items()) if k in shaping}
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


def reuses_student(options, student: Mapping[str, Any] | None) -> bool:
    """Whether the trial is the sweep's any-split ``student`` (its record) cut at one of its splits: it is scored
    there instead of trained."""
    return (student is not None and options.mode == "student" and options.split in student["splits"]
            and student_key(options) == student["key"])


def metrics_at_split(metrics: Mapping[str, Any], split: int) -> dict[str, Any]:
    """An any-split student's final metrics as a student of ``split`` reports them: its held-out figures at that split
    (``eval_<name>_k<split>``) as ``eval_<name>``, the other splits' left out."""
    per_split = {k: re.fullmatch(r"(eval_.+)_k(\d+)", k) for k in metrics}
    at_split = {m[1]: metrics[k] for k, m in per_split.items() if m and int(m[2]) == split}
    if not at_split:
        raise ValueError(f"split={split}: the any-split student's metrics hold no held-out scores there")
    return {**{k: v for k, v in metrics.items() if per_split[k] is None}, **at_split}


def speed_key(options, bench: BenchSettings, worker_cpus: float) -> str:
    """Name of a trial's speed figures: a hash of what they depend on (architecture, lengths, device, the batch)."""
    shaping = {k: getattr(options, k) for k in sorted(fields_with(SPEED))}
    what = {**shaping, "bench": asdict(bench), "worker_cpus": worker_cpus}
    return hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:12]


def unfinished_checkpoint(train_dir: str, epochs: int) -> str | None:
    """The newest epoch checkpoint under ``train_dir`` (a directory or bucket URI) that stopped before ``epochs``:
    the latest epoch, then the latest run (run labels end in their start time). A checkpoint still being copied
    (`trainables.training.checkpoints.persist_checkpoint`: a hidden folder until whole) is not one."""
    best: tuple[int, str, str] | None = None
    for state in storage.find_files(train_dir, TRAINER_STATE):
        folder = storage.parent(state)
        if storage.name(folder).startswith("."):
            continue
        epoch = int(json.loads(storage.read_text(state))["epoch"])
        key = (epoch, storage.name(storage.parent(folder)), folder)
        if epoch < epochs and (best is None or key[:2] > best[:2]):
            best = key
    return None if best is None else best[2]
