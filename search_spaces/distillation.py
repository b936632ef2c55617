"""Distillation at a fixed split: learning rate, how much of the task loss is distillation (kd_ratio), Hinton
temperature T, and the hidden-state, attention and layerwise (LRS) loss weights — the latter only when distillation
is on (kd_ratio > 0), attention and LRS only when an upper layer exists. The first trials are the training defaults,
the same student without distillation (kd_ratio 0: the gap distillation has to close) and the blog's recipe.

Copy this file to change it.
"""
from __future__ import annotations

from search_spaces.base import SmokeSize, SweepSpec, Target

SPLIT_FRACTION = 0.75


def define(trial, target: Target) -> dict:
    return define_at(trial, target, target.split_at(SPLIT_FRACTION))


def define_at(trial, target: Target, split: int) -> dict:
    """This space's parameters for a student at ``split`` (a copy of the space may choose another split)."""
    trial.suggest_float("lr", 1e-5, 3e-4, log=True)
    ratio = trial.suggest_float("kd_ratio", 0.0, 1.0, step=0.1)
    if ratio > 0.0:  # 0 = hard labels only: no teacher signal to weigh
        trial.suggest_float("kd_temperature", 1.0, 8.0, log=True)
        trial.suggest_float("hidden_weight", 0.0, 1.0)
        if split < target.num_layers:
            trial.suggest_float("attention_weight", 0.0, 1.0)
            trial.suggest_float("lrs_weight", 0.0, 1.0)
    return {"split": split}


def defaults_first(target: Target) -> list[dict]:
    return recipes_at(target, target.split_at(SPLIT_FRACTION))


def recipes_at(target: Target, split: int, lr: float = 5e-5) -> list[dict]:
    """The training defaults, no distillation, and the blog's recipe at ``split`` and ``lr``: the search starts from
    known points and the sweep always measures what distillation adds."""
    defaults = {"lr": lr, "kd_ratio": 0.5, "kd_temperature": 2.0}
    without = {"lr": lr, "kd_ratio": 0.0}
    if split == target.num_layers:
        return [{"lr": lr, "kd_ratio": 0.5}, without]
    none = {"hidden_weight": 0.0, "attention_weight": 0.0, "lrs_weight": 0.0}
    blog = {"hidden_weight": 0.5, "attention_weight": 0.5, "lrs_weight": 0.0}
    return [{**defaults, **none}, without, {**defaults, **blog}]


SPEC = SweepSpec(
    name="distillation",
    define_by_run=define,
    metrics=("accuracy",),
    modes=("max",),
    num_samples=24,
    epochs=3,
    scheduler="asha",
    enqueued=defaults_first,
    smoke=SmokeSize(num_samples=3, epochs=1),
    description="distillation temperature, alpha, hidden/attention/LRS weights and learning rate at a fixed split",
)
