"""One sweep trial: the Ray Tune function trainable, `run_trial`.

Per trial, in order:

1. the sampled config becomes `TrainOptions` (the search space's rule, `search_spaces.base.trial_options`);
2. the trial's MLflow run is found (a resumed trial keeps its one run) or started, with the options as parameters;
3. the trial's speed: the student's cached path timed against the teacher on a fixed random batch
   (`trainables.speed.trial`), beside the FLOPs bound and the cache bytes per token. Speed depends on the architecture
   alone, so it is measured once per architecture in a sweep (kept under the sweep's storage, `speed_key`), by the
   trial's rank-0 training worker before it trains (the probe), and every report carries it (multi-objective
   searchers read all objectives from each result);
4. the trial trains on Ray Train under ``<train storage>/<sweep>-<trial id>`` (continuing an interrupted attempt, or
   taking the teacher when a split-0 trial would train exactly it again, or the sweep's any-split student's scores at
   its split when the trial is that student cut there), each epoch's metrics forwarded to Tune and to the trial's
   run;
5. a last `tune.report` adds the trial's wall time and its training time, from which `decouple sweep` derives Tune's
   overhead per trial.

Steps 1, 2, 4 and 5 are the driver's (the search space, MLflow, the Ray Train run): they are handed to the trial in
its context as a `TrialSteps` (`orchestrator.sweep.trial.SweepTrialSteps`), so nothing here imports the driver.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from trainables import storage
from trainables.speed.trial import BenchSettings, kept_speed, trial_speed
from trainables.trial_reuse import reuses_student, reuses_teacher, speed_key

ACCURACY_KEY = "eval_score"
"""The training loop's headline metric: F1 for qa, accuracy for pair (percent)."""


class TrialSteps(Protocol):
    """The driver's part of a trial (see the module docstring); a picklable object, shared by a sweep's trials."""

    def options(self, config: Mapping[str, Any], base: Mapping[str, Any]):
        """The `TrainOptions` of the sampled ``config`` over the sweep's ``base`` options."""

    def open_run(self, options, trial_id: str) -> str:
        """The trial's MLflow run id (found again when the trial resumes), its parameters logged."""

    def train(self, options, context: "TrialContext", run_id: str, train_dir: str, speed: Mapping[str, float],
              probe: Callable[[], dict] | None) -> Any:
        """Train the trial under ``train_dir`` (or take the teacher), reporting each epoch with ``speed`` to Tune and
        the run; ``probe`` (when given) measures the speed on the rank-0 training worker."""

    def close(self, options, context: "TrialContext", run_id: str, trained: Any, started: float) -> dict[str, Any]:
        """Log and close the run; the trial's last report (``started``: `time.perf_counter` at the trial's start)."""

    def fail(self, run_id: str) -> None:
        """Mark the run failed."""


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one sweep shares; handed to `run_trial` through `tune.with_parameters`."""

    sweep: str
    """Sweep name: a trial's Ray Train run is kept under ``<sweep>-<trial id>``."""
    base: Mapping[str, Any]
    """Training options every trial starts from (model, teacher, data, task, epochs, ...)."""
    teacher: Mapping[str, Any]
    """The teacher's record: path, accuracy (each trial reports its drop below it), key (`teacher_key`), metrics."""
    train_storage: str
    """Directory the trials' Ray Train runs (checkpoints) are written to."""
    steps: TrialSteps
    """The driver's part of each trial."""
    bench: BenchSettings = field(default_factory=BenchSettings)
    """The speed measurement's batch."""
    worker_cpus: float = 1.0
    """CPUs of one training worker (the speed measurement gets the same)."""
    speed_cache: str | None = None
    """Directory (or bucket URI) where each architecture's speed figures are kept for the sweep's later trials of the
    same architecture; None measures every trial."""
    student: Mapping[str, Any] | None = None
    """The sweep's any-split student's record (`orchestrator.sweep.any_split`): a trial at one of its splits is scored
    on it instead of trained; None when the space trains a student per trial."""

    def train_dir(self, trial_id: str) -> str:
        """Where the trial's Ray Train run keeps its checkpoints."""
        return storage.join(self.train_storage, f"{self.sweep}-{trial_id}")


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """The Tune function trainable: see the module docstring. (Tune checks a resumed sweep's trainable by this name.)"""
    from ray import tune

    started = time.perf_counter()
    trial_id, steps = tune.get_context().get_trial_id(), context.steps
    options = steps.options(config, context.base)
    run_id = steps.open_run(options, trial_id)
    try:
        speed, probe = speed_or_probe(options, context)
        trained = steps.train(options, context, run_id, context.train_dir(trial_id), speed, probe)
    except BaseException:
        steps.fail(run_id)
        raise
    tune.report(steps.close(options, context, run_id, trained, started))


def speed_or_probe(options, context: TrialContext) -> tuple[dict[str, float], Callable[[], dict] | None]:
    """The trial's speed figures now, or the probe that measures them on its rank-0 training worker.

    Figures an earlier trial of the same architecture kept in ``context.speed_cache`` are read here. A trial that
    reuses the teacher trains nothing, so a Ray task holding one training worker's resources measures it. Any other
    trial times itself on its own training worker, before training, where torch is already imported (a separate
    process would import it again: seconds per trial, more with trials side by side). A trial scored on the sweep's
    any-split student trains nothing either, and is timed as the teacher is."""
    import ray

    location = None
    if context.speed_cache is not None:
        location = storage.join(context.speed_cache, speed_key(options, context.bench, context.worker_cpus) + ".json")
    cached = kept_speed(location)
    if cached is not None:
        return cached, None
    if reuses_teacher(options, context.teacher, context.student) or reuses_student(options, context.student):
        task = ray.remote(num_cpus=context.worker_cpus, num_gpus=1 if options.use_gpu else 0)(trial_speed)
        # "DEFAULT": outside the trial's placement group, which holds no CPU (`orchestrator.sweep.tuner.DRIVER_MEMORY`).
        return ray.get(task.options(scheduling_strategy="DEFAULT").remote(options, context.bench, location)), None
    return {}, functools.partial(trial_speed, options, context.bench, location)
