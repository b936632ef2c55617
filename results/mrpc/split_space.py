"""The split sweep behind results/mrpc: the shipped `split` space with MRPC's input lengths (both sentences fit in
64 tokens) and the splits up to L/2 first, where the fidelity targets apply.

Run (from the repository root; ../shared/data split into train/held-out as docs/fidelity.md says):
    decouple sweep results/mrpc/split_space.py --task pair --data mrpc-train.tsv --eval-data mrpc-heldout.tsv \
        --teacher <teacher dir> --name mrpc-split
"""
from __future__ import annotations

from dataclasses import replace

from search_spaces.split import SPEC as SPLIT, half_first

SPEC = replace(
    SPLIT,
    name="mrpc-split",
    settings={"max_question_len": 64, "max_passage_len": 64, "doc_stride": 16},
    enqueued=half_first,
    description="MRPC accuracy vs split k, k <= L/2 first",
    any_split=False,  # as it ran: one student trained per trial
)
