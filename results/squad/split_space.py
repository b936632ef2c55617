"""The split sweep behind results/squad: SQuAD v1.1 part a, 18 articles to train on and the other 6 held out, with
the shipped `split` space's trial, lengths that fit part a's questions and paragraphs (Q 32, P 192, stride 64), one
epoch per student (students start as the re-split teacher), and the splits up to L/2 first, where the fidelity targets
apply.

Run (from the repository root; part a split by article as docs/fidelity.md says):
    decouple sweep results/squad/split_space.py --task qa --data squad-a-train18.json \
        --eval-data squad-a-eval6.json --teacher <teacher dir> --name squad-split
"""
from __future__ import annotations

from search_spaces.base import SweepSpec
from search_spaces.split import SPEC as SPLIT, define, half_first

SPEC = SweepSpec(
    name="squad-split",
    define_by_run=define,
    metrics=SPLIT.metrics,
    modes=SPLIT.modes,
    num_samples=None,
    epochs=1,
    settings={"max_question_len": 32, "max_passage_len": 192, "doc_stride": 64},
    scheduler=None,
    enqueued=half_first,
    smoke=SPLIT.smoke,
    description="SQuAD part-a F1 vs split k, k <= L/2 first",
)
