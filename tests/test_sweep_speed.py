"""A sweep times each architecture once, on the trial's own training worker; later trials of the same shapes take
the first one's figures, and a trial that reuses the teacher (it trains nothing) is timed by a Ray task."""
from __future__ import annotations

import pytest

from trainables.options import TrainOptions
from trainables.speed.trial import BenchSettings
from trainables.trial import TrialContext, speed_or_probe
from trainables.trial_reuse import teacher_key

FIGURES = ("speedup", "speedup_bound", "state_bytes_per_token", "teacher_ms", "student_cached_ms")


def _context(tmp_path, teacher: dict) -> TrialContext:
    return TrialContext(sweep="speed", base={}, teacher=teacher, train_storage=str(tmp_path / "train"), steps=None,
                        bench=BenchSettings(batch_size=2, repeats=2), speed_cache=str(tmp_path / "speed"))


def _options(model: str, **changes) -> TrainOptions:
    return TrainOptions(mode="student", model=model, teacher=model, split=1, max_question_len=16, max_passage_len=48,
                        doc_stride=16, kd_temperature=2.0).replace(**changes)


def test_speed_is_measured_once_per_architecture_by_the_training_worker(tiny_qa_checkpoint, tmp_path):
    context, model = _context(tmp_path, {}), str(tiny_qa_checkpoint)
    figures, probe = speed_or_probe(_options(model), context)
    assert figures == {} and probe is not None  # the trial's rank-0 worker runs the probe before it trains
    first = probe()
    again, none = speed_or_probe(_options(model, kd_temperature=4.0, lr=1e-3), context)  # same shapes, other losses
    deeper, deeper_probe = speed_or_probe(_options(model, split=2), context)
    assert none is None and deeper == {} and deeper_probe is not None
    assert (first["speed_reused"], again["speed_reused"]) == (0.0, 1.0)
    assert first["bench_s"] > 0 and again["bench_s"] == 0.0
    assert {k: again[k] for k in FIGURES} == {k: first[k] for k in FIGURES}
    assert deeper_probe()["speedup_bound"] > first["speedup_bound"]
    assert len(list((tmp_path / "speed").glob("*.json"))) == 2


def test_a_reused_teacher_is_timed_by_a_ray_task(local_ray, tiny_qa_checkpoint, tmp_path):
    teacher = _options(str(tiny_qa_checkpoint), mode="teacher", split=0, teacher=None)
    figures, probe = speed_or_probe(teacher, _context(tmp_path, {"key": teacher_key(teacher)}))
    assert probe is None and figures["speed_reused"] == 0.0 and figures["speedup_bound"] == pytest.approx(1.0)
    assert figures["speedup"] > 0 and figures["teacher_ms"] > 0
