"""The rest of results/mrpc's split curve: the splits above L/2 (4, 5, 6 of MiniLM-L6's 6 layers) that
`split_space.py`'s sweep did not reach, with the same settings and the default recipe. At k = L a pair student is
degenerate by construction: its classifier reads [CLS], which sits in the first sentence, and no layer joins the
second one to it.

Run (from the repository root; ../shared/data split into train/held-out as docs/fidelity.md says):
    decouple sweep results/mrpc/split_rest_space.py --task pair --data mrpc-train.tsv --eval-data mrpc-heldout.tsv \\
        --teacher <teacher dir> --num-samples 3 --max-concurrent 1 --cpus-per-worker 2
"""
from __future__ import annotations

from dataclasses import replace

from search_spaces.base import Target
from search_spaces.split import SPEC as SPLIT


def above_half(target: Target) -> list[dict]:
    return [{"split": k} for k in range(target.num_layers // 2 + 1, target.num_layers + 1)]


SPEC = replace(
    SPLIT,
    name="mrpc-split-rest",
    settings={"max_question_len": 64, "max_passage_len": 64, "doc_stride": 16},  # as split_space.py
    enqueued=above_half,
    description="MRPC accuracy vs split k for k > L/2",
    any_split=False,  # as it ran: one student trained per trial
)
