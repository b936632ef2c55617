"""What a sweep definition is, and the dry run that proves one legal before any trial starts.

A definition is a module exposing ``SPEC: SweepSpec``. Its ``define_by_run(trial, target)`` only *asks* an Optuna
trial for values (``trial.suggest_*``) and may return a dict of constants; every key of the resulting config must
be a `TrainOptions` field the sweep is allowed to vary (see `RUNNER_FIELDS`). A config with ``split == 0`` trains
the full model (the left end of a split curve); ``split >= 1`` distils a decoupled student from the sweep's teacher.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainables.option_checks import check_sources
from trainables.options import RUNNER, STUDENT, TrainOptions, fields_with

if TYPE_CHECKING:
    import optuna

METRICS: dict[str, str] = {
    "accuracy": "F1 (qa) or accuracy (pair) on the held-out data, in percent",
    "accuracy_drop": "teacher accuracy minus the trial's accuracy, in points",
    "speedup": "measured speedup of the student's cached path over the teacher on a fixed batch",
    "speedup_bound": "FLOPs bound on that speedup",
    "state_bytes_per_token": "bytes of one passage token's cached state (values + int8 scales; the Parquet files "
                             "of a built cache hold more per token: `decouple cache build` says disk_bytes_per_token)",
}
"""Metrics every trial reports, usable as sweep objectives."""
MODES = ("max", "min")
SCHEDULERS = ("asha",)
SAMPLERS = ("tpe", "nsga2")
RUNNER_FIELDS = fields_with(RUNNER)
"""`TrainOptions` fields the runner owns: a search space may not set them (the sweep's command line does)."""
STUDENT_ONLY = fields_with(STUDENT)
"""Fields that mean nothing for split 0 (the full model): a space must make them conditional
on split >= 1."""
VALIDATION_SAMPLES = 64
"""Random configs drawn by `validate_spec` on top of the enqueued points."""


@dataclass(frozen=True)
class Target:
    """What a search space may depend on: the model it decouples and the epochs each trial trains."""

    num_layers: int
    """L: splits range over 0..L."""
    hidden_size: int
    """d: a compression ratio must divide it."""
    epochs: int
    """Epochs per trial (the sweep's, or its smoke size's): a compression phase 1 must be shorter."""

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"Target.{name}={getattr(self, name)} must be >= 1")

    @classmethod
    def from_checkpoint(cls, path: str | Path, epochs: int) -> "Target":
        """The target of a local HF checkpoint directory (reads its config.json only)."""
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        return cls(num_layers=config.num_hidden_layers, hidden_size=config.hidden_size, epochs=epochs)

    def ratios(self, largest: int = 16) -> tuple[int, ...]:
        """Compression ratios worth trying: the divisors of d up to ``largest`` (1 = off)."""
        return tuple(r for r in range(1, largest + 1) if self.hidden_size % r == 0)

    def split_at(self, fraction: float) -> int:
        """The split ``fraction`` of the way up the encoder, kept in 1..L (0.75 of 12 layers = 9, the blog's)."""
        return min(self.num_layers, max(1, round(fraction * self.num_layers)))


@dataclass(frozen=True)
class SmokeSize:
    """The small version of a sweep (`--smoke`): a few short trials on a slice of the data."""

    num_samples: int | None = 3
    """Trials to run; None = one per enqueued point."""
    epochs: int = 1
    """Epochs per trial (and for the teacher)."""
    max_train_examples: int = 96
    """Training examples per trial."""
    max_eval_examples: int = 48
    """Evaluation examples per trial."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Training options of the smoke run only, over the spec's settings (e.g. a larger lr for few steps)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "settings" and value is not None and value < 1:
                raise ValueError(f"SmokeSize.{f.name}={value} must be >= 1")


@dataclass(frozen=True)
class SweepSpec:
    """One sweep: its search space, objectives, budget and scheduling."""

    name: str
    """Short name: the sweep's directory, MLflow parent run and trial run names derive from it."""
    define_by_run: Callable[["optuna.Trial", Target], dict[str, Any] | None]
    """Asks the trial for values (no computation); returns constants to add to the config, or None."""
    metrics: tuple[str, ...] = ("accuracy",)
    """Objectives, from `METRICS`; more than one makes the sweep multi-objective."""
    modes: tuple[str, ...] = ("max",)
    """max or min, one per metric."""
    num_samples: int | None = None
    """Trials in a full sweep; None = one per enqueued point."""
    epochs: int = 2
    """Epochs per trial in a full sweep."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Training options fixed for every trial (e.g. max_passage_len), applied under the sampled values."""
    smoke: SmokeSize = SmokeSize()
    """The `--smoke` size."""
    scheduler: str | None = None
    """'asha' stops weak trials early (single objective only); None runs every trial to the end."""
    sampler: str = "tpe"
    """Optuna sampler: 'tpe' (TPE) or 'nsga2' (NSGA-II, multi-objective)."""
    enqueued: Callable[[Target], list[dict[str, Any]]] | None = None
    """Points tried first, in order (e.g. every split, so the curve is complete)."""
    description: str = ""
    """One line for the MLflow parent run and `--help`."""
    any_split: bool = False
    """Train one any-split student for every split 1..L before the trials (the space's settings apply to it), so that a
    trial at split k with no other student setting of its own is that student cut at k: scored and timed in seconds,
    not trained. False trains a student per trial."""

    def __post_init__(self) -> None:
        if not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"SweepSpec.name={self.name!r}: use letters, digits, '-' and '_' only")
        if len(self.metrics) != len(self.modes) or not self.metrics:
            raise ValueError(f"SweepSpec.metrics={self.metrics} and modes={self.modes}: give one mode per metric")
        for metric, mode in zip(self.metrics, self.modes):
            if metric not in METRICS:
                raise ValueError(f"SweepSpec.metrics: {metric!r} is unknown; use one of {', '.join(METRICS)}")
            if mode not in MODES:
                raise ValueError(f"SweepSpec.modes: {mode!r} is unknown; use max or min")
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise ValueError(f"SweepSpec.scheduler={self.scheduler!r} is unknown; use 'asha' or None")
        if self.scheduler and len(self.metrics) > 1:
            raise ValueError("SweepSpec.scheduler='asha' needs a single objective; use None for multi-objective")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"SweepSpec.sampler={self.sampler!r} is unknown; use one of {', '.join(SAMPLERS)}")
        qualname = getattr(self.define_by_run, "__qualname__", "")
        if "<lambda>" in qualname or "<locals>" in qualname:
            raise ValueError(
                f"SweepSpec.define_by_run={qualname}: use a module-level function (the searcher's state, which "
                "refers to it, is pickled so --resume can continue the sweep)"
            )
        if (self.num_samples is None or self.smoke.num_samples is None) and self.enqueued is None:
            raise ValueError("SweepSpec.num_samples=None (or smoke.num_samples=None) needs enqueued points; set it")
        if (self.num_samples is not None and self.num_samples < 1) or self.epochs < 1:
            raise ValueError("SweepSpec.num_samples and epochs must be >= 1")

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    def points(self, target: Target) -> list[dict[str, Any]]:
        """The enqueued points for ``target`` (none when the spec has no `enqueued`)."""
        return [] if self.enqueued is None else list(self.enqueued(target))

    def trials(self, target: Target, smoke: bool) -> int:
        """How many trials the sweep runs."""
        if smoke and self.smoke.num_samples is not None:
            return self.smoke.num_samples
        if smoke or self.num_samples is None:
            return len(self.points(target))
        return self.num_samples


@dataclass(frozen=True)
class BoundSpace:
    """``spec.define_by_run`` with its target fixed: the one-argument callable `OptunaSearch` takes (picklable,
    so the searcher's state can be saved for `--resume`)."""

    define_by_run: Callable[["optuna.Trial", Target], dict[str, Any] | None]
    target: Target

    def __call__(self, trial: "optuna.Trial") -> dict[str, Any] | None:
        return self.define_by_run(trial, self.target)


def coarse_to_fine(last: int) -> list[int]:
    """0..last ordered so every prefix spreads over the range: 0, last, the middle, then the quarters, ..."""
    order = [0] if last == 0 else [0, last]
    intervals = deque([(0, last)])
    while intervals:
        lo, hi = intervals.popleft()
        if hi - lo < 2:
            continue
        mid = (lo + hi) // 2
        order.append(mid)
        intervals.extend([(lo, mid), (mid, hi)])
    return order


def trial_options(config: Mapping[str, Any], base: Mapping[str, Any]) -> "TrainOptions":
    """The training run of one trial: the runner's ``base`` options, then the sampled ``config``.

    ``split == 0`` is the full model (mode teacher); ``split >= 1`` a student distilled from ``base['teacher']``.
    Raises ValueError naming the offending field.
    """
    check_keys(config)
    values = {**base, **config}
    values["mode"] = "student" if int(values.get("split", 0)) >= 1 else "teacher"
    return TrainOptions.from_dict(values)


def check_names(keys: Iterable[str]) -> None:
    """Every key a training option a sweep definition may set."""
    known = {f.name for f in fields(TrainOptions)} - RUNNER_FIELDS
    for key in keys:
        if key in RUNNER_FIELDS:
            raise ValueError(f"{key!r} is set by the sweep's command line, not by a search space; remove it")
        if key not in known:
            raise ValueError(f"{key!r} is not a training option; use one of {', '.join(sorted(known))}")


def check_keys(config: Mapping[str, Any]) -> None:
    """`check_names`, and student-only options only with split >= 1."""
    check_names(config)
    if int(config.get("split", 0)) == 0:
        student = sorted(STUDENT_ONLY & set(config))
        if student:
            raise ValueError(
                f"{student[0]!r} is set with split 0 (the full model); make it conditional on split >= 1"
            )


def check_config(config: Mapping[str, Any], target: Target, base: Mapping[str, Any]) -> None:
    """Raise ValueError (one line naming the field) if ``config`` cannot train on ``target`` (its options checked
    against the model's files too: `check_sources`)."""
    check_keys(config)
    options = trial_options(config, base)
    options.decoupled.check_against(target.num_layers, target.hidden_size)
    check_sources(options)


def validate_spec(
    spec: SweepSpec, target: Target, base: Mapping[str, Any], *, source: str = "", samples: int = VALIDATION_SAMPLES,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Dry-run ``spec`` on ``target``: every enqueued point, then ``samples`` random configs, each through
    `check_config`. Returns the configs; the first illegal one raises ValueError as one line naming ``source``,
    the point and the field."""
    import optuna

    where = source or spec.name
    try:
        check_names(spec.settings)
    except ValueError as err:
        raise ValueError(f"{where}: settings: {err}") from None
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        points = spec.points(target)
        for point in points:
            study.enqueue_trial(point, skip_if_exists=False)
        configs = []
        for i in range(len(points) + samples):
            point = points[i] if i < len(points) else None
            label = f"enqueued point {i} {point}" if point is not None else f"random sample {i - len(points)}"
            configs.append(_checked(spec, target, base, study.ask(), label, where, point))
        return configs
    finally:
        optuna.logging.set_verbosity(verbosity)


def _checked(spec, target, base, trial, label: str, where: str, point: dict | None) -> dict[str, Any]:
    try:
        constants = spec.define_by_run(trial, target)
    except Exception as err:  # a user's space can fail any way; each becomes one line
        raise ValueError(f"{where}: {label}: define_by_run failed: {type(err).__name__}: {err}") from None
    if constants is not None and not isinstance(constants, dict):
        raise ValueError(f"{where}: define_by_run returned {type(constants).__name__}; return a dict or None")
    config = {**trial.params, **(constants or {})}
    unused = sorted(set(point or {}) - set(trial.params))
    if unused:
        raise ValueError(f"{where}: {label} sets {unused[0]!r}, which the space never suggests; remove it")
    try:
        check_config(config, target, base)
    except ValueError as err:
        raise ValueError(f"{where}: {label} {config}: {err}") from None
    return config
