"""The split sweep behind results/rte: the shipped `split` space on RTE, the splits up to L/2 first, where the
fidelity targets apply.

RTE's first sentence (the premise) is the long one: 124 word pieces at the 90th percentile of ../shared/data's
training pairs, 148 at the 95th; the hypothesis is 19 and 25. The premise stays first, as the teacher reads it, so it
is the question segment (128 tokens) and the hypothesis the cached one (32).

Run (from the repository root; ../shared/data/rte-train.tsv split into train/held-out as docs/fidelity.md says):
    decouple sweep results/rte/split_space.py --task pair --data rte-train.tsv --eval-data rte-heldout.tsv \
        --teacher <teacher dir> --name rte-split
"""
from __future__ import annotations

from search_spaces.base import SweepSpec
from search_spaces.split import SPEC as SPLIT, define, half_first

SPEC = SweepSpec(
    name="rte-split",
    define_by_run=define,
    metrics=SPLIT.metrics,
    modes=SPLIT.modes,
    num_samples=None,
    epochs=2,
    settings={"max_question_len": 128, "max_passage_len": 32, "doc_stride": 16},
    scheduler=None,
    enqueued=half_first,
    smoke=SPLIT.smoke,
    description="RTE accuracy vs split k, k <= L/2 first",
)
