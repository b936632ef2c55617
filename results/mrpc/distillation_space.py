"""The distillation sweep behind results/mrpc/distillation: the shipped `distillation` space's parameters, at split
k = L/3 (2 of MiniLM-L6's 6 layers: the smallest split that loses accuracy on MRPC) instead of 3L/4, with MRPC's input
lengths and the student learning rate the split experiments found best (1e-4, docs/fidelity.md section 9). Its first
three trials are the space's own first points at that rate: the training defaults (Hinton KD, ratio 0.5, T 2), the
same student without distillation (the gap distillation has to close) and the blog's recipe (KD + last hidden state
and last attention at 0.5); every trial runs its 2 epochs (no early stopping).

Run (from the repository root; ../shared/data split into train/held-out as docs/fidelity.md says):
    decouple sweep results/mrpc/distillation_space.py --task pair --data mrpc-train.tsv \\
        --eval-data mrpc-heldout.tsv --teacher <teacher dir> --num-samples 3 --max-concurrent 1 --cpus-per-worker 2
"""
from __future__ import annotations

from dataclasses import replace

from search_spaces.base import Target
from search_spaces.distillation import SPEC as DISTILLATION

LR = 1e-4


def define(trial, target: Target) -> dict:
    split = max(1, target.num_layers // 3)
    trial.suggest_float("lr", 1e-5, 3e-4, log=True)
    ratio = trial.suggest_float("kd_ratio", 0.0, 1.0, step=0.1)
    if ratio > 0.0:
        trial.suggest_float("kd_temperature", 1.0, 8.0, log=True)
        trial.suggest_float("hidden_weight", 0.0, 1.0)
        trial.suggest_float("attention_weight", 0.0, 1.0)
        trial.suggest_float("lrs_weight", 0.0, 1.0)
    return {"split": split}


def recipes_first(target: Target) -> list[dict]:
    none = {"hidden_weight": 0.0, "attention_weight": 0.0, "lrs_weight": 0.0}
    defaults = {"lr": LR, "kd_ratio": 0.5, "kd_temperature": 2.0}
    blog = {**defaults, "hidden_weight": 0.5, "attention_weight": 0.5, "lrs_weight": 0.0}
    return [{**defaults, **none}, {"lr": LR, "kd_ratio": 0.0}, blog]


SPEC = replace(
    DISTILLATION,
    name="mrpc-distillation",
    define_by_run=define,
    epochs=2,
    scheduler=None,
    settings={"max_question_len": 64, "max_passage_len": 64, "doc_stride": 16},
    enqueued=recipes_first,
    description="MRPC accuracy at k = L/3 with and without distillation, then the distillation space",
)
