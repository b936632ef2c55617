"""Everything at once, three objectives: accuracy (max), measured speedup (max), cache bytes per token (min).

Split 1..L, compression ratio (phase 1 only when compressing), cache dtype, distillation (its weights only when on)
and learning rate. NSGA-II keeps a population spread along the front; `decouple report` reads the front and
recommends the fastest configuration within an accuracy/size budget. Copy this file to change it.
"""
from __future__ import annotations

from search_spaces.base import SmokeSize, SweepSpec, Target


def define(trial, target: Target) -> None:
    split = trial.suggest_int("split", 1, target.num_layers)
    ratio = trial.suggest_categorical("compression_ratio", target.ratios())
    if ratio > 1 and target.epochs > 1:
        trial.suggest_int("compression_phase1_epochs", 0, target.epochs - 1)
    trial.suggest_categorical("cache_dtype", ["fp32", "fp16", "int8"])
    trial.suggest_float("lr", 1e-5, 3e-4, log=True)
    ratio = trial.suggest_float("kd_ratio", 0.0, 1.0, step=0.1)
    if ratio > 0.0:
        trial.suggest_float("kd_temperature", 1.0, 8.0, log=True)
        trial.suggest_float("hidden_weight", 0.0, 1.0)
        if split < target.num_layers:
            trial.suggest_float("attention_weight", 0.0, 1.0)
            trial.suggest_float("lrs_weight", 0.0, 1.0)


SPEC = SweepSpec(
    name="pareto",
    define_by_run=define,
    metrics=("accuracy", "speedup", "state_bytes_per_token"),
    modes=("max", "max", "min"),
    num_samples=40,
    epochs=3,
    scheduler=None,
    sampler="nsga2",
    smoke=SmokeSize(num_samples=3, epochs=1),
    description="split, compression, cache dtype and distillation jointly: accuracy vs speedup vs cache size",
)
