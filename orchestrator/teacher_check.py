"""Whether a given teacher can teach this run: the head of the task, trained, with the data's classes.

A teacher may be any fine-tuned Hugging Face task model (a hub name or a directory), not only a `decouple train`
output, so the driver checks before Ray starts what a worker would otherwise discover by distilling from noise: the
task head is in the weights (not started at random) and, for pairs, the head has the data's classes in the data's
order (``id2label``, when the teacher names its classes). Its shape is checked with the options (`TrainOptions`).
"""
from __future__ import annotations

import json
from pathlib import Path

from orchestrator.model_settings import class_names, same_classes
from trainables import storage
from trainables.model.checkpoint_files import untrained_head
from trainables.tasks.registry import task_named


def check_teacher(teacher: str, location: str, task: str, label_names: tuple[str, ...]) -> None:
    """`ValueError`, one line naming the teacher and the fix, when the checkpoint at ``location`` (``teacher`` as the
    user named it) lacks a trained ``task`` head or, for pairs, classifies into other classes than ``label_names``.
    A teacher in a bucket is not read here (its workers check it)."""
    if storage.is_uri(location):
        return
    head = untrained_head(location, task)
    if head is not None:
        raise ValueError(f"teacher {teacher}: has no trained {task} head ('{head}' is not in its weights); pass a "
                         f"model fine-tuned for {task}: a `decouple train --mode teacher` output or a hub "
                         f"{task_named(task).hf_kind} model")
    if not task_named(task).has_classes:
        return
    config = json.loads((Path(location) / "config.json").read_text(encoding="utf-8-sig"))
    count = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    if count != len(label_names):
        raise ValueError(f"teacher {teacher}: its head has {count} classes, the data {len(label_names)} "
                         f"({', '.join(label_names)}); pass a teacher fine-tuned on the data's labels")
    names = class_names(config)
    if names and not same_classes(names, label_names):
        raise ValueError(f"teacher {teacher}: its classes are {', '.join(names)}, the data's "
                         f"{', '.join(label_names)}; pass --labels with the data's labels in the teacher's class "
                         "order, or a teacher of these labels")
