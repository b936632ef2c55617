"""The data settings a checkpoint was trained with, read back so `eval`, `cache build` and `answer` use them.

`decouple train` already writes them into every checkpoint, and this module only reads them (nothing is stored
twice): the run's options in ``training_config.json`` (task, max_question_len, max_passage_len, doc_stride, the
``labels`` given as written), and in ``config.json`` the ``decoupled`` section (task, max_question_len) and the
class names as ``id2label``, Hugging Face's own field, which a fine-tuned hub model carries as well. A setting the
command line gives wins; a setting that means nothing for the task (doc_stride for pairs, labels for QA) is not
taken.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trainables.data.label_sets import parse_labels
from trainables.tasks.registry import TASKS, task_named
from trainables.training.config import TRAINING_CONFIG

CONFIG = "config.json"
_GENERIC_LABEL = re.compile(r"LABEL_\d+")


@dataclass(frozen=True)
class TrainedSettings:
    """What a checkpoint records about the data it was trained on."""

    recorded: dict[str, tuple[object, str]]
    """Setting -> (value, the file it was read from): task, max_question_len, max_passage_len, doc_stride, labels
    (the labels option of the training run, as written in its data)."""
    class_names: tuple[str, ...] | None
    """The head's class names in class order (``id2label``), None when the checkpoint names none (``LABEL_0``...)."""

    def take(self, given: Mapping[str, object], task: str) -> tuple[dict[str, object], str | None]:
        """For every setting of ``task`` that ``given`` leaves None and the checkpoint records: its value; and the
        line that says so (``using the model's training settings: task pair, max_passage_len 64 (from
        training_config.json)``), None when nothing was taken."""
        taken = {name: self.recorded[name][0] for name in task_named(task).data_settings
                 if given.get(name) is None and name in self.recorded}
        if not taken:
            return {}, None
        files = sorted({self.recorded[name][1] for name in taken}, key=[TRAINING_CONFIG, CONFIG].index)
        return taken, f"using the model's training settings: {describe(taken)} (from {' and '.join(files)})"


def read_trained_settings(model_dir: str | Path) -> TrainedSettings:
    """The settings recorded in the checkpoint directory ``model_dir`` (a plain pre-trained model records none)."""
    folder = Path(model_dir)
    record, config = _json(folder / TRAINING_CONFIG), _json(folder / CONFIG)
    decoupled = config.get("decoupled") if isinstance(config.get("decoupled"), dict) else {}
    recorded: dict[str, tuple[object, str]] = {}
    for name in ("task", "max_question_len", "max_passage_len", "doc_stride"):
        if record.get(name) is not None:
            recorded[name] = (record[name], TRAINING_CONFIG)
        elif decoupled.get(name) is not None:
            recorded[name] = (decoupled[name], CONFIG)
    try:
        labels = parse_labels(record.get("labels"))
    except ValueError:
        labels = None
    if labels:
        recorded["labels"] = (",".join(labels), TRAINING_CONFIG)
    task = recorded.get("task", (None,))[0]
    if task in TASKS:  # a pair run's record still holds the (unused) QA default doc_stride
        kept = task_named(task).data_settings
        recorded = {k: v for k, v in recorded.items() if k in kept or k == "max_question_len"}
    return TrainedSettings(recorded, class_names(config))


def class_names(config: Mapping[str, object]) -> tuple[str, ...] | None:
    """The class names of a ``config.json`` mapping's ``id2label`` in class order; None when absent or generic."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        names = tuple(str(name) for _, name in sorted(id2label.items(), key=lambda item: int(item[0])))
    except (TypeError, ValueError):
        return None
    return None if all(_GENERIC_LABEL.fullmatch(name) for name in names) else names


def same_classes(ours: tuple[str, ...], theirs: tuple[str, ...]) -> bool:
    """Whether two class lists name the same classes in the same order (case aside: CONTRADICTION = contradiction)."""
    return [name.lower() for name in ours] == [name.lower() for name in theirs]


def describe(settings: Mapping[str, object]) -> str:
    """``task pair, max_passage_len 64, labels no,yes``."""
    return ", ".join(f"{name} {value}" for name, value in settings.items())


def _json(path: Path) -> dict:
    """A JSON object file, or {} when it is missing or not one (`check_checkpoint_dir` reports broken configs)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
