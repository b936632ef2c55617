"""Passage-state compression at a fixed split: ratio r (d -> d/r) and, when compressing, the length of phase 1
(compressor/decompressor trained alone on reconstruction before joint training).

The split is 3/4 of the way up the encoder, the blog's 9 of 12. Copy this file to change it.
"""
from __future__ import annotations

from search_spaces.base import SmokeSize, SweepSpec, Target

SPLIT_FRACTION = 0.75


def define(trial, target: Target) -> dict:
    ratio = trial.suggest_categorical("compression_ratio", target.ratios())
    if ratio > 1 and target.epochs > 1:
        trial.suggest_int("compression_phase1_epochs", 0, target.epochs - 1)
    return {"split": target.split_at(SPLIT_FRACTION)}


def every_ratio(target: Target) -> list[dict]:
    return [{"compression_ratio": r} for r in target.ratios()]


SPEC = SweepSpec(
    name="compression",
    define_by_run=define,
    metrics=("accuracy",),
    modes=("max",),
    num_samples=12,
    epochs=3,
    scheduler="asha",
    enqueued=every_ratio,
    smoke=SmokeSize(num_samples=3, epochs=1),
    description="accuracy vs compression ratio of the cached passage states at a fixed split",
)
