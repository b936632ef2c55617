"""One sweep trial: the Ray Tune function trainable that measures a configuration's speed, trains it on Ray Train
and records it in MLflow.

Per trial, in order:

1. the sampled config becomes `TrainOptions` (`search_spaces.base.trial_options`);
2. the trial's speed: the student's cached path timed against the teacher on a fixed random batch
   (`trainables.speed.timing.measure_speedup`), beside the FLOPs bound and the cache bytes per token. Speed depends on the
   architecture alone, not on the weights, so it is measured once per architecture in a sweep
   (`trainables.speed.trial`, kept under the sweep's storage), by the trial's rank-0 training worker before it
   trains (`LoopConfig.probe`), and every report carries it (multi-objective searchers read all objectives from each
   result);
3. `run_training` runs a `TorchTrainer` under ``<train storage>/<sweep>-<trial id>`` with `SweepReportCallback`, which
   forwards each epoch's metrics to Tune with the speed figures and the accuracy drop against the teacher added, and
   logs them to the trial's nested MLflow run. The run is ours, found by name before one is created, so a resumed
   trial keeps it (exactly one run per trial), and a resumed trial continues from its last epoch checkpoint;
4. a last `tune.report` adds the trial's wall time and its training time, from which `decouple sweep` derives Tune's
   overhead per trial.
"""
from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mlflow.tracking import MlflowClient
from ray.tune.integration.ray_train import TuneReportCallback

from orchestrator.sweep.tracking import SWEEP_TAG, TRIAL_TAG, find_or_start_run, for_comparison
from orchestrator.tracking import Tracking, end_run, log_metrics, log_params
from orchestrator.train import log_checkpoint
from trainables import storage
from trainables.options import SPEED, TEACHER, fields_with
from trainables.speed.trial import BenchSettings, kept_speed, trial_speed

ACCURACY_KEY = "eval_score"
"""The training loop's headline metric: F1 for qa, accuracy for pair (percent)."""


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one sweep shares; handed to `run_trial` through `tune.with_parameters`."""

    sweep: str
    """Sweep name: a trial's Ray Train run is kept under ``<sweep>-<trial id>``; its MLflow run is named by what it
    trains (`trial_run_name`) and tagged with the sweep and the trial id."""
    base: Mapping[str, Any]
    """Training options every trial starts from (model, teacher, data, task, epochs, ...)."""
    tracking_uri: str
    """MLflow tracking URI."""
    experiment: str
    """MLflow experiment of the parent and trial runs."""
    parent_run_id: str
    """The sweep's MLflow parent run."""
    teacher: Mapping[str, Any]
    """The teacher's record: path, accuracy (each trial reports its drop below it), key (`teacher_key`), metrics."""
    train_storage: str
    """Directory the trials' Ray Train runs (checkpoints) are written to."""
    bench: BenchSettings = field(default_factory=BenchSettings)
    """The speed measurement's batch."""
    worker_cpus: float = 1.0
    """CPUs of one training worker (the speed measurement gets the same)."""
    speed_cache: str | None = None
    """Directory (or bucket URI) where each architecture's speed figures are kept for the sweep's later trials of the
    same architecture; None measures every trial."""


class SweepReportCallback(TuneReportCallback):
    """`TuneReportCallback` that adds the trial's constant figures and its accuracy drop to every epoch's metrics,
    and logs them to the trial's MLflow run (step = epoch)."""

    def __init__(self, constants: Mapping[str, float], teacher_accuracy: float, tracking_uri: str, run_id: str):
        super().__init__()
        self._constants = dict(constants)
        self._teacher_accuracy = teacher_accuracy
        self._uri, self._run_id = tracking_uri, run_id

    def enrich(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        accuracy = float(metrics[ACCURACY_KEY])
        return {**metrics, **self._constants, "accuracy": accuracy, "accuracy_drop": self._teacher_accuracy - accuracy}

    def after_report(self, run_context, metrics, checkpoint) -> None:
        enriched = [self.enrich(m) for m in metrics]
        # MLflow gets the compared figures rounded (`for_comparison`); Tune and the searcher keep every digit.
        log_metrics(self._uri, self._run_id, for_comparison(enriched[0]), step=int(enriched[0].get("epoch", 0)))
        super().after_report(run_context, enriched, checkpoint)


def trial_run_name(options, trial_id: str) -> str:
    """What a trial's MLflow run is called: what it trains, then Tune's id (``k3-r4-int8-704edd92``)."""
    return f"k{options.split}-r{options.compression_ratio}-{options.cache_dtype}-{trial_id}"


def describe_trial_run(uri: str, run_id: str, final: Mapping[str, Any]) -> None:
    """The trial's run description (the MLflow UI shows it under the run's name) and its ``speed_reliable`` tag:
    ``split 3, ratio 4, int8: accuracy 81.20 (drop 0.80), speedup 2.31x (bound 3.10x), 100 state bytes/token``."""
    if any(key not in final for key in ("accuracy", "accuracy_drop", "speedup", "speedup_bound",
                                        "state_bytes_per_token")):
        return
    reliable = bool(final.get("speed_reliable", 1.0))
    mark = "" if reliable else " (unreliable)"
    speed = f"speedup {final['speedup']:.2f}x{mark} (bound {final['speedup_bound']:.2f}x)"
    text = (f"split {final['split']}, ratio {final['compression_ratio']}, {final['cache_dtype']}: accuracy "
            f"{final['accuracy']:.2f} (drop {final['accuracy_drop']:.2f}), {speed}, "
            f"{final['state_bytes_per_token']:.0f} state bytes/token")
    client = MlflowClient(uri)
    client.set_tag(run_id, "mlflow.note.content", text)
    client.set_tag(run_id, "speed_reliable", str(reliable).lower())


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """The Tune function trainable: see the module docstring."""
    from ray import tune

    from search_spaces.base import trial_options

    start = time.perf_counter()
    trial_id = tune.get_context().get_trial_id()
    options = trial_options(config, context.base)
    tracking = Tracking(context.tracking_uri, context.experiment, trial_run_name(options, trial_id),
                        context.parent_run_id)
    run_id = find_or_start_run(tracking, {SWEEP_TAG: context.sweep, TRIAL_TAG: trial_id})
    train_dir = storage.join(context.train_storage, f"{context.sweep}-{trial_id}")
    try:
        log_params(context.tracking_uri, run_id, {**options.to_dict(), "trial_id": trial_id})
        speed, probe = _speed(options, context)
        # The architecture joins every report: a metric column and chart axis beside accuracy and speed in MLflow.
        shape = {"split": options.split, "compression_ratio": options.compression_ratio}
        callback = SweepReportCallback({**shape, **speed}, context.teacher["accuracy"], context.tracking_uri, run_id)
        result = _train(options, context, run_id, train_dir, callback, probe)
        if result.checkpoint_path:
            log_checkpoint(context.tracking_uri, run_id, result.checkpoint_path)
    except BaseException:
        end_run(context.tracking_uri, run_id, "FAILED")
        raise
    closing = {"trial_train_s": trained_seconds(context.tracking_uri, run_id), "fit_wall_s": result.wall_s,
               "trial_wall_s": time.perf_counter() - start}
    epochs = callback.enrich(result.metrics)
    # The callback logged each epoch as it was reported; a reused teacher reported none, so its figures go here.
    log_metrics(context.tracking_uri, run_id,
                for_comparison({**epochs, **closing} if reuses_teacher(options, context) else closing),
                step=options.epochs)
    final = {**epochs, **closing, "split": options.split, "compression_ratio": options.compression_ratio,
             "cache_dtype": options.cache_dtype}
    describe_trial_run(context.tracking_uri, run_id, final)
    end_run(context.tracking_uri, run_id)
    tune.report({**final, "checkpoint_path": str(result.checkpoint_path), "mlflow_run_id": run_id})


def _speed(options, context: TrialContext) -> tuple[dict[str, float], Callable[[], dict] | None]:
    """The trial's speed figures now, or the probe that measures them on its rank-0 training worker.

    Figures an earlier trial of the same architecture kept in ``context.speed_cache`` are read here. A trial that
    reuses the teacher trains nothing, so a Ray task holding one training worker's resources measures it. Any other
    trial times itself on its own training worker, before training, where torch is already imported (a separate
    process would import it again: seconds per trial, more with trials side by side)."""
    import ray

    location = None
    if context.speed_cache is not None:
        location = storage.join(context.speed_cache, speed_key(options, context) + ".json")
    cached = kept_speed(location)
    if cached is not None:
        return cached, None
    if reuses_teacher(options, context):
        task = ray.remote(num_cpus=context.worker_cpus, num_gpus=1 if options.use_gpu else 0)(trial_speed)
        # "DEFAULT": outside the trial's placement group, which holds no CPU (see `orchestrator.sweep.runner.DRIVER_MEMORY`).
        return ray.get(task.options(scheduling_strategy="DEFAULT").remote(options, context.bench, location)), None
    return {}, functools.partial(trial_speed, options, context.bench, location)


def speed_key(options, context: TrialContext) -> str:
    """Name of a trial's speed figures: a hash of what they depend on (architecture, lengths, device, the batch)."""
    shaping = {k: getattr(options, k) for k in sorted(fields_with(SPEED))}
    what = {**shaping, "bench": asdict(context.bench), "worker_cpus": context.worker_cpus}
    return hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _train(options, context: TrialContext, run_id: str, train_dir: str, callback: SweepReportCallback,
           probe: Callable[[], dict] | None):
    """Train the trial on Ray Train (continuing an interrupted attempt), or take the teacher when split 0 would
    train exactly the teacher again."""
    from orchestrator.train import TrainResult, run_training

    client = MlflowClient(context.tracking_uri)
    if reuses_teacher(options, context):
        client.set_tag(run_id, "reused_teacher", context.teacher["path"])
        return TrainResult(dict(context.teacher["metrics"]), context.teacher["path"], None, 0.0, 0.0)
    resume = unfinished_checkpoint(train_dir, options.epochs)
    if resume is not None:
        client.set_tag(run_id, "resumed_from", str(resume))
        options = options.replace(resume_from=str(resume))
    return run_training(options, None, storage_path=train_dir, callbacks=[callback], probe=probe)


def reuses_teacher(options, context: TrialContext) -> bool:
    """Whether the trial would train exactly the sweep's teacher again (split 0, same settings): it takes it instead."""
    return options.mode == "teacher" and teacher_key(options) == context.teacher["key"]


def teacher_key(options) -> str:
    """Stable name of a full-model training run: a hash of the `TrainOptions` that shape its weights (where it
    writes, and what only students use, left out: the fields without the `TEACHER` role). A split-0 trial with the
    teacher's key is the teacher."""
    shaping = {k: v for k, v in sorted(options.to_dict().items()) if k in fields_with(TEACHER)}
    return hashlib.sha1(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:12]


def trained_seconds(uri: str, run_id: str) -> float:
    """Seconds the trial spent in training steps: its per-epoch ``train_s`` summed over epochs (the latest value per
    epoch, so epochs an interrupted attempt trained count once)."""
    per_epoch = {m.step: m.value for m in sorted(MlflowClient(uri).get_metric_history(run_id, "train_s"),
                                                 key=lambda m: m.timestamp)}
    return float(sum(per_epoch.values()))


def unfinished_checkpoint(train_dir: str, epochs: int) -> str | None:
    """The newest epoch checkpoint under ``train_dir`` (a directory or bucket URI) that stopped before ``epochs``:
    the latest epoch, then the latest run (run labels end in their start time)."""
    from trainables.training.config import TRAINER_STATE

    best: tuple[int, str, str] | None = None
    for state in storage.find_files(train_dir, TRAINER_STATE):
        epoch = int(json.loads(storage.read_text(state))["epoch"])
        folder = storage.parent(state)
        key = (epoch, storage.name(storage.parent(folder)), folder)
        if epoch < epochs and (best is None or key[:2] > best[:2]):
            best = key
    return None if best is None else best[2]
