"""Which splits an any-split student trains at in each step: the sandwich rule of slimmable networks (Yu & Huang,
2019) over splits instead of widths. Every step trains the smallest and the largest split of the set, the two ends
every other split lies between, plus ``per_step - 2`` of the splits in between, taken in turn so that each is
trained equally often. With fewer than 3 per step there is no room for both ends and a middle: ``per_step`` splits
of the set are taken in turn. A pure function of the step, so every replica and every resumed run takes the same
splits."""
from __future__ import annotations


def step_splits(splits: tuple[int, ...], per_step: int, step: int) -> tuple[int, ...]:
    """The splits of global step ``step`` (0-based), in increasing order; ``per_step`` is capped at the set's size.

    (1..6, 3 per step): step 0 -> (1, 2, 6), step 1 -> (1, 3, 6), ..., step 4 -> (1, 5, 6), step 5 -> (1, 2, 6).
    (1..6, 2 per step): (1, 2), (3, 4), (5, 6), (1, 2), ...; (1..6, 1 per step): 1, 2, 3, 4, 5, 6, 1, ...
    """
    ordered = sorted(set(splits))
    n = min(per_step, len(ordered))
    if n < 3:  # no room for both ends and a middle: the whole set in turn
        return tuple(sorted({ordered[(step * n + j) % len(ordered)] for j in range(n)}))
    middle = ordered[1:-1]
    taken = n - 2
    picked = {middle[(step * taken + j) % len(middle)] for j in range(taken)} if taken else set()
    return tuple(sorted({ordered[0], ordered[-1], *picked}))
