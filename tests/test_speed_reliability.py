"""Speed figures measured on a loaded machine, or above their FLOPs bound, are marked unreliable where they are
reported: the measurement, the report's table, the plots and the trial's MLflow run (issue 16)."""
from __future__ import annotations

import torch

from orchestrator.sweep.report import trial_row
from orchestrator.sweep.tracking import format_table, plot_curve, plot_front
from tests.conftest import tiny_bert_config
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel
from trainables.speed import timing as bench
from trainables.speed.reliability import BOUND_TOLERANCE, unreliable_reasons
from trainables.speed.timing import BenchBatch, TimingOptions, measure_speedup


def trial(name: str, split: int, speedup: float, reliable: float, load: float = 0.5) -> dict:
    return {"trial": name, "split": split, "compression_ratio": 1, "cache_dtype": "fp32", "accuracy": 70.0 + split,
            "accuracy_drop": 5.0 - split, "speedup": speedup, "speedup_bound": 2.0, "state_bytes_per_token": 128.0,
            "speed_reliable": reliable, "speed_load": load}


ROWS = [trial("quiet", 1, 1.5, 1.0), trial("busy", 2, 2.5, 0.0, load=3.2)]


def test_a_speedup_above_its_bound_or_a_load_above_the_cores_is_unreliable():
    assert unreliable_reasons({"cached": (1.5, 2.0)}, load=1.0, cpus=2) == []
    assert unreliable_reasons({"cached": (2.0 * (1 + BOUND_TOLERANCE), 2.0)}, load=None, cpus=2) == []  # noise
    assert unreliable_reasons({"cached": (2.2, 2.0), "live": (0.9, 1.1)}, load=1.0, cpus=2) == [
        "cached speedup 2.20 above its FLOPs bound 2.00"]
    assert unreliable_reasons({"cached": (1.5, 2.0)}, load=2.5, cpus=2) == ["load average 2.5 above the 2 cores"]


def test_the_measurement_carries_its_load_and_its_verdict(monkeypatch):
    torch.manual_seed(0)
    student = DecoupledModel.from_hf_config(tiny_bert_config(), DecoupledConfig(split=1, max_question_len=8))
    batch = BenchBatch.random(student.hf_config.vocab_size, 2, 8, 16, seed=0)
    timing = TimingOptions(repeats=1, warmup=0)
    monkeypatch.setattr(bench, "load_average", lambda: 0.0)
    monkeypatch.setattr(bench, "cores", lambda: 2)
    quiet = measure_speedup(student.hf, student, batch, timing)
    assert quiet["speed_load"] == 0.0
    assert quiet["speed_reliable"] == (1.0 if quiet["speedup_cached"] <= quiet["bound_cached"] * 1.05
                                       and quiet["speedup_live"] <= quiet["bound_live"] * 1.05 else 0.0)
    monkeypatch.setattr(bench, "load_average", lambda: 7.5)
    busy = measure_speedup(student.hf, student, batch, timing)
    assert (busy["speed_load"], busy["speed_reliable"]) == (7.5, 0.0)


def test_the_report_table_marks_an_unreliable_speedup_and_says_why():
    lines = format_table(ROWS, front=ROWS).splitlines()
    quiet, busy = lines[1], lines[2]
    assert " 1.50 " in quiet and "?" not in quiet
    assert " 2.50? " in busy
    assert lines[-1].startswith("? = speedup not reliable: above its FLOPs bound, or timed while the load average")
    assert "(here 3.2 to 3.2 on " in lines[-1]
    assert "?" not in format_table(ROWS[:1])  # no mark, no footnote


def test_plots_draw_an_unreliable_speed_hollow():
    front = plot_front(ROWS, ROWS).axes[0]
    filled, hollow = front.collections[:2]
    assert len(filled.get_facecolors()) == 1 and len(hollow.get_facecolors()) == 0  # facecolors "none"
    assert hollow.get_offsets().tolist() == [[2.5, 72.0]]
    curve = plot_curve(ROWS, "split", {"accuracy": 75.0})
    labels = [line.get_label() for axes in curve.axes for line in axes.get_lines()]
    assert "unreliable speed" in labels


def test_report_rows_carry_the_verdict():
    last = {"trial_wall_s": 1.0, "speedup": 2.0, "speed_reliable": 0.0, "speed_load": 3.0, "accuracy": 70.0}
    assert trial_row("t1", {"split": 1}, last)["speed_reliable"] == 0.0


def test_bench_table_marks_unreliable_rows():
    from dataclasses import replace

    from orchestrator.bench import BenchOptions, format_table as bench_table, run_bench

    result = run_bench(BenchOptions(shape="tiny", splits=(0, 1), batch_size=1, max_question_len=4, max_passage_len=8,
                                    repeats=1, warmup=0))
    first, second = ({**row, "speed_reliable": flag} for row, flag in zip(result.rows, (1.0, 0.0)))
    table = bench_table(replace(result, rows=[first, second])).splitlines()
    assert "?" not in table[-2] and table[-1].count("?") == 2  # x live and x cached of the unreliable row
    assert any(line.startswith("x? = speed not reliable (speed_reliable 0)") for line in table)
    assert "not reliable" not in bench_table(replace(result, rows=[first]))
