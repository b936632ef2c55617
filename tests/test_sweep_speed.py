"""A sweep measures each architecture's speed once: later trials of the same shapes take the first one's figures."""
from __future__ import annotations

import pytest

from orchestrator.sweep_trial import BenchSettings, TrialContext, _measure
from orchestrator.train_options import TrainOptions


@pytest.fixture
def ray_2cpu():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_speed_is_measured_once_per_architecture(ray_2cpu, tiny_qa_checkpoint, tmp_path):
    context = TrialContext(sweep="speed", base={}, tracking_uri="", experiment="", parent_run_id="", teacher={},
                           train_storage=str(tmp_path / "train"), bench=BenchSettings(batch_size=2, repeats=2),
                           speed_cache=str(tmp_path / "speed"))
    model = str(tiny_qa_checkpoint)
    options = TrainOptions(mode="student", model=model, teacher=model, split=1, max_question_len=16,
                           max_passage_len=48, doc_stride=16, kd_temperature=2.0)
    first = _measure(options, context)
    again = _measure(options.replace(kd_temperature=4.0, lr=1e-3), context)  # same shapes, other losses
    deeper = _measure(options.replace(split=2), context)
    assert (first["speed_reused"], again["speed_reused"], deeper["speed_reused"]) == (0.0, 1.0, 0.0)
    assert first["bench_s"] > 0 and again["bench_s"] == 0.0
    figures = ("speedup", "speedup_bound", "cache_bytes_per_token", "teacher_ms", "student_cached_ms")
    assert {k: again[k] for k in figures} == {k: first[k] for k in figures}
    assert deeper["speedup_bound"] > first["speedup_bound"]
    assert len(list((tmp_path / "speed").glob("*.json"))) == 2
