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
from search_spaces.distillation import define_at, recipes_at

LR = 1e-4


def split_for(target: Target) -> int:
    return max(1, target.num_layers // 3)


def define(trial, target: Target) -> dict:
    return define_at(trial, target, split_for(target))


def recipes_first(target: Target) -> list[dict]:
    return recipes_at(target, split_for(target), lr=LR)


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
