"""The split sweep behind results/mrpc/split_once: the whole curve k = 0..6 from one any-split student (the shipped
`split` space, which trains one student for every split and scores each split's trial on it), with MRPC's input
lengths as `split_space.py` (both sentences fit in 64 tokens), against the same teacher and data.

Run (from the repository root; data from `python results/make_data.py ../shared/data data`, the teacher as
docs/results.md trains it):
    decouple sweep results/mrpc/split_once_space.py --task pair --data data/mrpc-train.tsv \
        --eval-data data/mrpc-heldout.tsv --teacher runs/teacher-mrpc --name mrpc-split-once \
        --max-concurrent 1 --cpus-per-worker 2
"""
from __future__ import annotations

from dataclasses import replace

from search_spaces.split import SPEC as SPLIT

SPEC = replace(
    SPLIT,
    name="mrpc-split-once",
    settings={"max_question_len": 64, "max_passage_len": 64, "doc_stride": 16},
    description="MRPC accuracy vs split k (0..6) from one any-split student",
)
