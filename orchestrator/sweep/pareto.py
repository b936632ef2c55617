"""The Pareto front of a sweep and the configuration to recommend within a budget (pure functions on rows).

A row is one finished trial as a flat dict: its sampled parameters and its metrics, at least ``accuracy``,
``accuracy_drop``, ``speedup`` and ``state_bytes_per_token`` (see `search_spaces.base.METRICS`), and where measured
``speedup_bound`` and ``speed_reliable``.

A recommendation is ranked on the speedup a row can be credited with (`credited_speedup`): an unreliable measurement
(``speed_reliable`` 0) counts for no more than its FLOPs bound, so a baseline slowed by other processes cannot make a
slow configuration look fast. A row whose bound is 1 (split 0: the teacher's own forward) is never recommended: it
removes no work, and "keep the teacher" is what an empty recommendation says.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainables.options import check_finite
from trainables.speed.reliability import is_reliable

Row = dict[str, Any]


@dataclass(frozen=True)
class Objective:
    """One axis of the front."""

    metric: str
    """Row key, e.g. ``speedup``."""
    mode: str
    """max or min."""

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"Objective.mode={self.mode!r} for {self.metric}: use max or min")

    def better_or_equal(self, a: float, b: float) -> bool:
        return a >= b if self.mode == "max" else a <= b

    def strictly_better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b


FRONT_OBJECTIVES = (
    Objective("accuracy", "max"), Objective("speedup", "max"), Objective("state_bytes_per_token", "min"),
)
"""The three axes a report's front is drawn on: accuracy up, speedup up, state bytes per token down."""


@dataclass(frozen=True)
class Budget:
    """Limits a recommended configuration must meet (None = no limit)."""

    max_drop: float | None = 1.0
    """Largest accuracy drop below the teacher, in points."""
    min_speedup: float | None = None
    """Smallest speedup over the teacher (`credited_speedup`: an unreliable measurement counts up to its bound)."""
    max_state_bytes_per_token: float | None = None
    """Largest ``state_bytes_per_token``: bytes of one passage token's cached state (values + int8 scales)."""

    def __post_init__(self) -> None:
        check_finite(self)

    def admits(self, row: Row) -> bool:
        return (
            (self.max_drop is None or row["accuracy_drop"] <= self.max_drop)
            and (self.min_speedup is None or credited_speedup(row) >= self.min_speedup)
            and (self.max_state_bytes_per_token is None
                 or row["state_bytes_per_token"] <= self.max_state_bytes_per_token)
        )


def dominates(a: Row, b: Row, objectives: Sequence[Objective] = FRONT_OBJECTIVES) -> bool:
    """``a`` is at least as good as ``b`` on every objective and strictly better on one."""
    return all(o.better_or_equal(a[o.metric], b[o.metric]) for o in objectives) and any(
        o.strictly_better(a[o.metric], b[o.metric]) for o in objectives
    )


def pareto_front(rows: Sequence[Row], objectives: Sequence[Objective] = FRONT_OBJECTIVES) -> list[Row]:
    """The rows no other row dominates, best accuracy first (ties: faster first)."""
    front = [r for r in rows if not any(dominates(other, r, objectives) for other in rows if other is not r)]
    return sorted(front, key=lambda r: (-r["accuracy"], -r["speedup"]))


def credited_speedup(row: Row) -> float:
    """The measured speedup, capped at its FLOPs bound when the measurement is marked unreliable."""
    if is_reliable(row) or row.get("speedup_bound") is None:
        return row["speedup"]
    return min(row["speedup"], row["speedup_bound"])


def removes_work(row: Row) -> bool:
    """Whether the row's configuration can be faster than the teacher at all (FLOPs bound above 1; rows without a
    bound count by their measured speedup)."""
    bound = row.get("speedup_bound")
    return (row["speedup"] if bound is None else bound) > 1.0


def refine_candidates(rows: Sequence[Row], budget: Budget, n: int) -> list[int]:
    """The splits at which a dedicated student may change the recommendation: among the any-split student's rows
    (``training`` 'any-split') outside ``budget`` and faster than the recommended row (all of them when none is
    recommended), the ``n`` nearest the accuracy budget (smallest drop first; ties: faster first)."""
    best = recommend(rows, budget)
    floor = -1.0 if best is None else credited_speedup(best)
    outside = [r for r in rows if r.get("training") == "any-split" and not budget.admits(r)
               and credited_speedup(r) > floor]
    ranked = sorted(outside, key=lambda r: (r["accuracy_drop"], -credited_speedup(r)))
    return [int(r["split"]) for r in ranked[:n]]


def recommend(rows: Sequence[Row], budget: Budget) -> Row | None:
    """The row with the highest `credited_speedup` within ``budget`` among those that remove work (ties: higher
    accuracy, then smaller cache); None if none fits."""
    fitting = [r for r in rows if removes_work(r) and budget.admits(r)]
    if not fitting:
        return None
    return max(fitting, key=lambda r: (credited_speedup(r), r["accuracy"], -r["state_bytes_per_token"]))
