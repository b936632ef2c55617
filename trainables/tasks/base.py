"""What a task is: the one object (`Task`) that owns everything QA and pair classification do differently: its data
loader and features, its head, its metric and decoding, and the options it reads; and the data a run trains on
(`TaskData`).

Nothing here imports torch or transformers: model configs and training options look tasks up without loading them.
A task's methods import what they need when they run.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from trainables.data.errors import DataError, LoadReport


@dataclass
class TaskData:
    """Model-ready training and evaluation rows of one task, with the loaders' kept/skipped reports."""

    train: Any
    """`QAFeatures` or `PairFeatures`."""
    eval: Any
    """The held-out rows, as ``train``."""
    num_labels: int
    label_names: tuple[str, ...]
    reports: list[LoadReport]

    @property
    def summaries(self) -> list[str]:
        """One ``kept N, skipped M`` line per loader."""
        return [r.summary() for r in self.reports]

    @property
    def problems(self) -> int:
        """Examples the loaders skipped or repaired: a quiet worker (a sweep trial) shows the summaries only then."""
        return sum(r.skipped + r.warnings for r in self.reports)


class Task(ABC):
    """One task: its facts as attributes, its behaviour as methods. Adding a task is adding a subclass to the
    registry (`trainables.tasks.registry`)."""

    name: str
    """The ``task`` option's value."""
    metric: str
    """The headline score among the evaluation's scores: what ``eval_score`` is and sweeps rank by."""
    metric_label: str
    """The headline score as a person reads it."""
    hf_kind: str
    """The kind of Hugging Face model that has this head, as the hub names it."""
    head_prefix: str
    """The head's weight names start with this (a checkpoint without them has an untrained head)."""
    data_settings: tuple[str, ...]
    """The data settings a command may take from a checkpoint trained for this task."""
    unused_options: tuple[str, ...]
    """Training options that mean nothing for this task: neither required nor checked."""
    has_classes: bool
    """The head classifies into the data's named classes (a teacher's must be the data's)."""
    extracts_answers: bool
    """Answers a question with a span of its passage: what passage caches and `decouple serve` are for."""
    smoke_question_len: int
    """Q of a sweep's smoke run (unless the space's settings fix it): what the task's synthetic questions need."""
    smoke_passage_len: int
    """P of a sweep's smoke run (unless the space's settings fix it): what the task's synthetic passages need."""

    # ---- the model ------------------------------------------------------------------------------------------------
    @abstractmethod
    def auto_class(self) -> type:
        """The transformers ``AutoModelFor...`` class of this head."""

    @abstractmethod
    def head_kwargs(self, num_labels: int) -> dict[str, Any]:
        """What the head's Hugging Face config needs beyond the encoder's."""

    @abstractmethod
    def head(self, model, sequence, mask, question_len: int) -> dict[str, Any]:
        """The `DecoupledOutput` fields of ``model``'s head on its final joint states (B, T, d), their (B, T) mask, the
        first ``question_len`` positions the question's."""

    @abstractmethod
    def logit_shape(self, joint_len: int, num_labels: int) -> tuple[int, ...]:
        """The shape of one row's task logits (`task_logits`) for joint sequences of ``joint_len`` tokens."""

    def check_num_labels(self, num_labels: int) -> None:
        """Refuse a class count the head cannot have (one line naming the field)."""

    def check_pair_head(self, pair_head: str) -> None:
        """Refuse a pair head (any but 'cls') this task has no use for."""
        if pair_head != "cls":
            raise ValueError(f"pair_head={pair_head!r} applies to task 'pair' only; leave it 'cls' for task "
                             f"{self.name!r}")

    def name_classes(self, model, names: tuple[str, ...]) -> None:
        """Record the data's class names ``names`` in ``model``'s config (nothing for a task without classes)."""

    # ---- options and data ---------------------------------------------------------------------------------------
    def smoke_lengths(self) -> dict[str, int]:
        """The Q and P options of a sweep's smoke run."""
        return {"max_question_len": self.smoke_question_len, "max_passage_len": self.smoke_passage_len}

    @abstractmethod
    def recognises(self, data: str) -> bool:
        """``data`` (a ``data`` option's value) is plainly data of this task, by its file suffix or source name."""

    def check_options(self, options) -> None:
        """Refuse what `TrainOptions` ``options`` cannot mean for this task (one line naming the field and the fix)."""

    def check_labels(self, labels: tuple[str, ...], fix: str) -> None:
        """Refuse ``labels`` (parsed) given for data without labels; ``fix`` is what the caller's user can do."""

    @abstractmethod
    def check_data(self, options) -> tuple[str, ...]:
        """Load `TrainOptions` ``options``' training and eval data on the driver, `ValueError` / `DataError` in one
        line when it cannot train; returns its class names (() without classes)."""

    @abstractmethod
    def load_data(self, spec, tokenizer) -> TaskData:
        """Load, split and featurize the training and evaluation data of the `DataSpec` ``spec``."""

    @abstractmethod
    def load_examples(self, source: str, *, split: str, limit: int | None,
                      labels: tuple[str, ...] | None) -> tuple[list, tuple[str, ...], LoadReport]:
        """Evaluation examples of ``source`` (at most ``limit``), their class names and the loader's report."""

    @abstractmethod
    def features(self, examples: list, tokenizer, *, max_question_len: int, max_passage_len: int,
                 doc_stride: int | None, label_names: tuple[str, ...], source: str) -> tuple[Any, list[LoadReport]]:
        """Model inputs of ``examples`` and the reports of what was cut."""

    # ---- evaluation ---------------------------------------------------------------------------------------------
    @abstractmethod
    def evaluate(self, model, features, label_names: tuple[str, ...], *, batch_size: int, device,
                 version_2: bool | None = None, passage_states=None, progress=None) -> tuple[dict, dict[str, str]]:
        """The scores of ``model`` on ``features`` and its prediction per example id, decoded as this task does
        (`trainables.metrics.evaluation`). ``version_2``: QA scoring with no-answer predictions (None: when the data
        has unanswerable questions); ``passage_states``: cached passages (QA)."""


def check_usable(name: str, examples: list, report: LoadReport) -> None:
    """`DataError` naming the first problem when nothing is left of the option ``name``'s data (the other skipped
    rows are not printed here)."""
    if not examples:
        first = f"; the first: {report.problems[0]}" if report.problems else ""
        raise DataError(f"{name}: no usable examples ({report.summary()}){first}")
