"""The Pareto front and the budgeted recommendation, against fronts worked out by hand."""
from __future__ import annotations

import pytest

from orchestrator.pareto import Budget, Objective, dominates, pareto_front, recommend


def row(name: str, accuracy: float, speedup: float, nbytes: float, teacher: float = 80.0) -> dict:
    return {"name": name, "accuracy": accuracy, "accuracy_drop": teacher - accuracy, "speedup": speedup,
            "state_bytes_per_token": nbytes}


# a: accurate but slow; b: faster, same size; c: dominated by b (worse on all three);
# d: smallest cache; e: ties a on accuracy and size but is faster, so it dominates a.
A = row("a", 80.0, 1.2, 1536)
B = row("b", 79.5, 2.0, 1536)
C = row("c", 79.0, 1.9, 1600)
D = row("d", 75.0, 2.0, 192)
E = row("e", 80.0, 1.3, 1536)
ROWS = [A, B, C, D, E]


def test_dominance_needs_one_strict_improvement():
    assert dominates(B, C)
    assert dominates(E, A)
    assert not dominates(A, A)  # equal on all axes: neither dominates
    assert not dominates(B, D) and not dominates(D, B)  # trade accuracy against size


def test_front_by_hand():
    front = pareto_front(ROWS)
    assert [r["name"] for r in front] == ["e", "b", "d"]


def test_front_on_chosen_axes():
    objectives = [Objective("accuracy", "max"), Objective("speedup", "max")]
    # Without the size axis d (75, 2.0) is dominated by b (79.5, 2.0).
    assert [r["name"] for r in pareto_front(ROWS, objectives)] == ["e", "b"]


def test_recommend_fastest_within_budget():
    # Drop <= 1 point admits a (0), b (0.5), c (1.0), e (0); b and d tie on speed but d drops 5 points.
    assert recommend(ROWS, Budget(max_drop=1.0))["name"] == "b"
    # No accuracy limit: b and d both at 2.0x, b wins the tie on accuracy.
    assert recommend(ROWS, Budget(max_drop=None))["name"] == "b"
    # A size cap leaves only d.
    assert recommend(ROWS, Budget(max_drop=None, max_state_bytes_per_token=200))["name"] == "d"
    # Nothing reaches 3x.
    assert recommend(ROWS, Budget(min_speedup=3.0)) is None


def test_bad_mode_names_the_metric():
    with pytest.raises(ValueError, match="speedup"):
        Objective("speedup", "up")
