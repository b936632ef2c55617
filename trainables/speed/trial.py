"""A sweep trial's speed figures: its student's cached path timed against the teacher on one fixed random batch
(`trainables.speed.timing`), beside the FLOPs bound and the cache bytes per token. Speed depends on the architecture
alone, so the weights are random and the figures are kept per architecture for the sweep's later trials. It runs
where the trial trains (its rank-0 training worker, or a Ray task holding one worker's resources), so nothing here
imports the driver.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

from trainables import storage
from trainables.model.config import DecoupledConfig
from trainables.model.source import resolve_model_path


@dataclass(frozen=True)
class BenchSettings:
    """The fixed batch each trial times its student on (question and passage lengths are the trial's own)."""

    batch_size: int = 8
    """Rows in the batch."""
    repeats: int = 5
    """Timed calls per path; medians are reported."""
    warmup: int = 1
    """Untimed calls per path first."""
    seed: int = 0
    """Seed of the random token ids."""

    def __post_init__(self) -> None:
        for name, low in (("batch_size", 1), ("repeats", 1), ("warmup", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"BenchSettings.{name}={getattr(self, name)} must be >= {low}")


def measure_trial_speed(options, bench: BenchSettings) -> dict[str, float]:
    """Time the student ``options`` describes against its teacher on one fixed random batch (random weights of the
    teacher's architecture: speed does not depend on their values), on the trial's device with the threads Ray gives
    the calling task (one per CPU, as a training worker gets). ``speed_reliable`` (1.0 or 0.0) and ``speed_load``
    say whether the figures can be reported as facts (`trainables.speed.reliability`)."""
    import torch
    from transformers import AutoConfig

    from trainables.model.decoupled import DecoupledModel
    from trainables.speed.timing import BenchBatch, TimingOptions, measure_speedup

    source = storage.local_copy(options.teacher) if options.teacher else resolve_model_path(options.model)
    shape = AutoConfig.from_pretrained(source, local_files_only=True)
    common = dict(max_question_len=options.max_question_len, task=options.task, num_labels=max(2, shape.num_labels))
    student_config = replace(options.decoupled, splits=(), num_labels=common["num_labels"])  # timed at its split
    torch.manual_seed(bench.seed)
    teacher = DecoupledModel.from_hf_config(AutoConfig.from_pretrained(source, local_files_only=True),
                                            DecoupledConfig(split=0, **common)).hf
    student = DecoupledModel.from_hf_config(shape, student_config)
    device = "cuda" if options.use_gpu else "cpu"
    batch = BenchBatch.random(shape.vocab_size, bench.batch_size, options.max_question_len, options.max_passage_len,
                              bench.seed)
    row = measure_speedup(teacher.to(device), student.to(device), batch,
                          TimingOptions(device, bench.repeats, bench.warmup))
    return {
        "speedup": row["speedup_cached"],
        "speedup_bound": row["bound_cached"],
        "speedup_live": row["speedup_live"],
        "speedup_live_bound": row["bound_live"],
        "state_bytes_per_token": row["state_bytes_per_token"],
        "teacher_ms": row["full"]["median_ms"],
        "student_cached_ms": row["cached"]["median_ms"],
        "speed_reliable": row["speed_reliable"],
        **({"speed_load": row["speed_load"]} if row["speed_load"] is not None else {}),
    }


def trial_speed(options, bench: BenchSettings, location: str | None) -> dict[str, float]:
    """The speed figures of ``options``' architecture: read from ``location`` when an earlier trial kept them there
    (``speed_reused`` 1, ``bench_s`` 0), else `measure_trial_speed`, kept at ``location`` for the next."""
    cached = kept_speed(location)  # a restarted attempt, or a trial of the same architecture beside this one
    if cached is not None:
        return cached
    start = time.perf_counter()
    speed = measure_trial_speed(options, bench)
    if location is not None:
        storage.write_text(location, json.dumps(speed, indent=1))
    return {**speed, "bench_s": time.perf_counter() - start, "speed_reused": 0.0}


def kept_speed(location: str | None) -> dict[str, float] | None:
    """The figures kept at ``location`` (``speed_reused`` 1, ``bench_s`` 0), or None when none are."""
    if location is None or not storage.exists(location):
        return None
    return {**json.loads(storage.read_text(location)), "bench_s": 0.0, "speed_reused": 1.0}
