"""The compression sweep behind results/squad/compression: SQuAD v1.1 part a (as `split_space.py`), the student at
k = L/3 (2 of MiniLM-L6's 6 layers: the split sweep's best, 2.4 F1 below a teacher trained as long; k = 3 lost 20) with
its passage states compressed d -> d/r and stored as int8, r = 4 first, then 2 and 1; one epoch each, compressor and
decompressor trained jointly with the rest (no phase 1 in a one-epoch budget). Each trial is scored through int8
states, as it would answer from its cache.

Run (from the repository root):
    decouple sweep results/squad/compression_space.py --task qa --data squad-a-train18.json \\
        --eval-data squad-a-eval6.json --teacher <teacher dir> --name squad-compression
"""
from __future__ import annotations

from dataclasses import replace

from search_spaces.base import Target
from search_spaces.split import SPEC as SPLIT

RATIOS = (4, 2, 1)


def define(trial, target: Target) -> dict:
    trial.suggest_categorical("compression_ratio", [r for r in RATIOS if target.hidden_size % r == 0])
    return {"split": max(1, target.num_layers // 3)}


def largest_first(target: Target) -> list[dict]:
    return [{"compression_ratio": r} for r in RATIOS if target.hidden_size % r == 0]


SPEC = replace(
    SPLIT,
    name="squad-compression",
    define_by_run=define,
    epochs=1,
    settings={"max_question_len": 32, "max_passage_len": 192, "doc_stride": 64, "cache_dtype": "int8"},
    enqueued=largest_first,
    description="SQuAD part-a F1 vs compression ratio r (int8 states) at k = L/3",
    any_split=False,  # as it ran: one student trained per trial
)
