"""The checks of a `TrainOptions` that read files: the data paths exist, the output folders can be written, and the
model (and teacher) fit the options, from their ``config.json``. They resolve model names (a hub name may be fetched
once, a bucket's model copied to this node), so they run once per run, explicitly: `check_sources` is called by the
commands and `run_training` before anything starts, never on construction or ``.replace()``.
"""
from __future__ import annotations

import json
from pathlib import Path

from trainables import storage
from trainables.model.checkpoint_files import check_checkpoint_dir
from trainables.model.config import check_fits
from trainables.model.source import model_location, resolve_model_path
from trainables.options import TrainOptions
from trainables.training.config import TRAINER_STATE

_DATA_SUFFIXES = (".json", ".jsonl", ".tsv", ".csv")
_TRAINER_STATE_KEYS = ("epoch", "phase", "global_step")


def check_sources(options: TrainOptions) -> TrainOptions:
    """Raise ``ValueError`` (one line naming the field and the fix) if the files ``options`` names do not fit it;
    return ``options`` unchanged otherwise."""
    _check_paths(options)
    _check_model_fits(options)
    return options


def _check_paths(o: TrainOptions) -> None:
    for name in ("data", "eval_data"):
        source = getattr(o, name)
        if source is None:
            continue
        if not source.strip():
            raise ValueError(f"{name}: empty; use 'synthetic', a data file or a hub name")
        if source.endswith(_DATA_SUFFIXES) and not Path(source).expanduser().is_file():
            raise ValueError(f"{name}={source!r}: no such file")
    for name in ("output_dir", "teacher_logits_cache"):
        if getattr(o, name) is not None:
            storage.check_directory_target(getattr(o, name), name)
    if o.resume_from is not None:
        _check_resume_from(o.resume_from)


def _check_resume_from(location: str) -> None:
    """The checkpoint to resume is read as far as the worker will read it, without loading a tensor: config.json, each
    safetensors header against its file's size, and trainer_state.json. A bucket's checkpoint is checked for its
    config.json only (the rest would mean downloading it on the driver)."""
    if not storage.exists(storage.join(storage.resolve(location), "config.json")):
        raise ValueError(f"resume_from={location!r} has no config.json; pass a checkpoint directory of this run")
    if storage.is_uri(location):
        return
    path = Path(storage.resolve(location))
    try:
        check_checkpoint_dir(path, "resume_from")
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None
    _check_trainer_state(path)


def _check_trainer_state(path: Path) -> None:
    file = path / TRAINER_STATE
    if not file.is_file():
        raise ValueError(f"resume_from {path}: no {TRAINER_STATE}; pass an epoch checkpoint (epoch_NNN) of a training "
                         "run")
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deeply
        state = None
    if not isinstance(state, dict) or not all(isinstance(state.get(k), int) for k in _TRAINER_STATE_KEYS):
        raise ValueError(f"resume_from {path}: {TRAINER_STATE} is not an object of integer "
                         f"{', '.join(_TRAINER_STATE_KEYS)}; resume from an earlier epoch's checkpoint")


def _model_shape(name: str, path: Path | str) -> tuple[int, int, int]:
    """(layers, hidden size, position embeddings) from a checkpoint's config.json (a local path or a bucket URI)."""
    config = json.loads(storage.read_text(storage.join(storage.resolve(str(path)), "config.json")))
    try:
        return int(config["num_hidden_layers"]), int(config["hidden_size"]), int(config["max_position_embeddings"])
    except KeyError as err:
        raise ValueError(f"{name}: {path}/config.json lacks {err.args[0]}; is it a BERT-family encoder?") from None


def _check_model_fits(o: TrainOptions) -> None:
    name, path = f"model {o.model!r}", resolve_model_path(o.model)
    teacher = None if o.teacher is None else model_location(o.teacher, "teacher")
    if o.mode == "student" and o.student_init == "teacher":
        name, path = f"teacher {o.teacher!r}", teacher
    layers, hidden, positions = _model_shape(name, path)
    check_fits(max(o.split_set), o.compression_ratio, layers, hidden, model=name, lowest_split=1)
    if o.max_question_len + o.max_passage_len > positions:
        raise ValueError(
            f"max_question_len + max_passage_len = {o.max_question_len + o.max_passage_len} exceeds the {positions} "
            f"positions of {name}; shorten max_passage_len"
        )
    if (o.attention_weight > 0 or o.lrs_weight > 0) and max(o.split_set) >= layers:
        raise ValueError(f"split={max(o.split_set)} leaves no upper layer for attention/LRS losses; use splits below "
                         f"{layers}")
    if o.uses_teacher and teacher is not None:
        _check_teacher_fits(o, teacher, layers, hidden)


def _check_teacher_fits(o: TrainOptions, teacher: str, layers: int, hidden: int) -> None:
    """The teacher reads the student's inputs, and feature losses compare its states with the student's."""
    teacher_layers, teacher_hidden, teacher_positions = _model_shape(f"teacher {o.teacher!r}", teacher)
    if o.max_question_len + o.max_passage_len > teacher_positions:
        raise ValueError(
            f"max_question_len + max_passage_len = {o.max_question_len + o.max_passage_len} exceeds the "
            f"{teacher_positions} positions of teacher {o.teacher!r}; shorten max_passage_len"
        )
    if o.uses_features and (teacher_layers, teacher_hidden) != (layers, hidden):
        raise ValueError(
            f"teacher: {teacher_layers} layers × {teacher_hidden} wide, the student {layers} × {hidden}; feature "
            "losses (hidden/attention/lrs weights) need the same shape — set them to 0 or use a matching teacher"
        )
