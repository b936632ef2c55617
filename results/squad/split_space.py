"""The split sweep behind results/squad: SQuAD v1.1 part a, 18 articles to train on and the other 6 held out, with
the shipped `split` space's trial, lengths that fit part a's questions and paragraphs (Q 32, P 192, stride 64), one
epoch per student (students start as the re-split teacher), and the splits up to L/2 first, where the fidelity targets
apply.

Run (from the repository root; part a split by article as docs/fidelity.md says):
    decouple sweep results/squad/split_space.py --task qa --data squad-a-train18.json \
        --eval-data squad-a-eval6.json --teacher <teacher dir> --name squad-split
"""
from __future__ import annotations

from dataclasses import replace

from search_spaces.split import SPEC as SPLIT, half_first

SPEC = replace(
    SPLIT,
    name="squad-split",
    epochs=1,
    settings={"max_question_len": 32, "max_passage_len": 192, "doc_stride": 64},
    enqueued=half_first,
    description="SQuAD part-a F1 vs split k, k <= L/2 first",
    any_split=False,  # as it ran: one student trained per trial
)
