"""The Pareto front and the budgeted recommendation, against fronts worked out by hand."""
from __future__ import annotations

import pytest

from orchestrator.sweep.pareto import Budget, Objective, credited_speedup, dominates, pareto_front, recommend


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


def timed(name: str, accuracy: float, speedup: float, bound: float, reliable: bool) -> dict:
    return {**row(name, accuracy, speedup, 1536), "speedup_bound": bound, "speed_reliable": float(reliable)}


def test_an_unreliable_speedup_is_credited_up_to_its_bound():
    assert credited_speedup(timed("x", 80, 1.99, 1.46, reliable=False)) == 1.46
    assert credited_speedup(timed("x", 80, 1.30, 1.46, reliable=False)) == 1.30  # below its bound: as measured
    assert credited_speedup(timed("x", 80, 1.50, 1.46, reliable=True)) == 1.50  # within the timing tolerance
    assert credited_speedup(row("old", 80, 1.7, 1536)) == 1.7  # rows from before the marks: as measured


def test_recommendation_ranks_credited_speedups_and_never_the_teachers_forward():
    # The make-demo sweep under load: split 0 (the teacher's own forward, bound 1.00) timed at 1.99x.
    split0 = timed("k0", 99.0, 1.99, 1.00, reliable=False)
    k3 = timed("k3", 98.5, 1.55, 1.46, reliable=False)
    k2 = timed("k2", 98.6, 1.40, 1.31, reliable=True)
    assert recommend([split0, k3, k2], Budget(max_drop=1.0))["name"] == "k3"  # 1.46 credited beats 1.40
    assert recommend([split0, k3, k2], Budget(max_drop=1.0, min_speedup=1.5)) is None  # k3 counts 1.46, not 1.55
    assert recommend([split0], Budget(max_drop=None)) is None  # keep the teacher


def test_bad_mode_names_the_metric():
    with pytest.raises(ValueError, match="speedup"):
        Objective("speedup", "up")


def test_report_says_keep_the_teacher_or_how_an_unreliable_pick_was_ranked():
    from orchestrator.sweep.report import SweepReport, format_report

    split0 = {**timed("k0", 99.0, 1.99, 1.00, reliable=False), "trial": "k0", "split": 0, "checkpoint": "t"}
    k3 = {**timed("k3", 98.5, 1.55, 1.46, reliable=False), "trial": "k3", "split": 3, "checkpoint": "c3"}
    teacher = {"path": "t", "accuracy": 99.0}

    def text(rows: list[dict], budget: Budget) -> str:
        return format_report(SweepReport("s", teacher, rows, pareto_front(rows), recommend(rows, budget), budget,
                                         {}, [r["trial"] for r in rows]))

    assert text([split0], Budget(max_drop=1.0)).splitlines()[-1] == (
        "no configuration faster than the teacher within the budget (accuracy drop <= 1): keep the teacher, or widen "
        "the budget (`decouple report --max-drop`)")
    assert "trial k3 — 1.55x measured, not reliable (? above; ranked at 1.46x) (1.46x FLOPs bound)" in text(
        [split0, k3], Budget(max_drop=1.0))
