"""The driver's part of every sweep trial, handed to the Tune trainable (`trainables.trial.run_trial`) in its
context: the search space's rule from a sampled config to options, the trial's MLflow run, and its Ray Train run
(`orchestrator.train.run_training` with `SweepReportCallback`, which forwards each epoch's metrics to Tune with the
speed figures and the accuracy drop against the teacher added, and logs them to the trial's nested MLflow run). The
run is ours, found by name before one is created, so a resumed trial keeps it (exactly one run per trial), and a
resumed trial continues from its last epoch checkpoint.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient
from ray.tune.integration.ray_train import TuneReportCallback

from orchestrator.sweep.tracking import SWEEP_TAG, TRIAL_TAG, find_or_start_run, for_comparison
from orchestrator.tracking import Tracking, end_run, log_metrics, log_params
from orchestrator.train import TrainResult, log_checkpoint, run_training
from search_spaces.base import trial_options
from trainables.trial import ACCURACY_KEY, TrialContext
from trainables.trial_reuse import metrics_at_split, reuses_student, reuses_teacher, unfinished_checkpoint


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


@dataclass(frozen=True)
class Trained:
    """What `SweepTrialSteps.train` hands `close`: the Train run's result and the callback that reported it."""

    result: TrainResult
    callback: SweepReportCallback


@dataclass(frozen=True)
class SweepTrialSteps:
    """The driver's part of each trial of one sweep (`trainables.trial.TrialSteps`)."""

    sweep: str
    """Sweep name: each trial's MLflow run is tagged with it and the trial id."""
    tracking_uri: str
    """MLflow tracking URI."""
    experiment: str
    """MLflow experiment of the parent and trial runs."""
    parent_run_id: str
    """The sweep's MLflow parent run."""

    def options(self, config: Mapping[str, Any], base: Mapping[str, Any]):
        return trial_options(config, base)

    def open_run(self, options, trial_id: str) -> str:
        tracking = Tracking(self.tracking_uri, self.experiment, trial_run_name(options, trial_id), self.parent_run_id)
        run_id = find_or_start_run(tracking, {SWEEP_TAG: self.sweep, TRIAL_TAG: trial_id})
        try:
            log_params(self.tracking_uri, run_id, {**options.to_dict(), "trial_id": trial_id})
        except BaseException:
            self.fail(run_id)
            raise
        return run_id

    def train(self, options, context: TrialContext, run_id: str, train_dir: str, speed: Mapping[str, float],
              probe: Callable[[], dict] | None) -> Trained:
        # The architecture joins every report: a metric column and chart axis beside accuracy and speed in MLflow.
        shape = {"split": options.split, "compression_ratio": options.compression_ratio}
        callback = SweepReportCallback({**shape, **speed}, context.teacher["accuracy"], self.tracking_uri, run_id)
        result = self._fit(options, context, run_id, train_dir, callback, probe)
        if result.checkpoint_path:
            log_checkpoint(self.tracking_uri, run_id, result.checkpoint_path)
        return Trained(result, callback)

    def _fit(self, options, context: TrialContext, run_id: str, train_dir: str, callback: SweepReportCallback,
             probe: Callable[[], dict] | None) -> TrainResult:
        """Train the trial on Ray Train (continuing an interrupted attempt), or take the teacher when split 0 would
        train exactly the teacher again, or the sweep's any-split student's scores at the trial's split when the trial
        is that student cut there."""
        client = MlflowClient(self.tracking_uri)
        if reuses_teacher(options, context.teacher, context.student):
            client.set_tag(run_id, "reused_teacher", context.teacher["path"])
            return TrainResult(dict(context.teacher["metrics"]), context.teacher["path"], None, 0.0, 0.0)
        if reuses_student(options, context.student):
            client.set_tag(run_id, "any_split_student", context.student["path"])
            metrics = metrics_at_split(context.student["metrics"], options.split)
            return TrainResult(metrics, context.student["path"], None, 0.0, 0.0)
        resume = unfinished_checkpoint(train_dir, options.epochs)
        if resume is not None:
            client.set_tag(run_id, "resumed_from", str(resume))
            options = options.replace(resume_from=str(resume))
        return run_training(options, None, storage_path=train_dir, callbacks=[callback], probe=probe)

    def close(self, options, context: TrialContext, run_id: str, trained: Trained, started: float) -> dict[str, Any]:
        result = trained.result
        closing = {"trial_train_s": trained_seconds(self.tracking_uri, run_id), "fit_wall_s": result.wall_s,
                   "trial_wall_s": time.perf_counter() - started}
        epochs = trained.callback.enrich(result.metrics)
        # The callback logged each epoch as it was reported; a reused teacher reported none, so its figures go here.
        training = trial_training(options, context)
        reused = training != "own"  # the callback saw no epoch: the figures are logged here
        log_metrics(self.tracking_uri, run_id, for_comparison({**epochs, **closing} if reused else closing),
                    step=options.epochs)
        final = {**epochs, **closing, **options.decoupled.cache_settings(), "training": training}
        describe_trial_run(self.tracking_uri, run_id, final)
        end_run(self.tracking_uri, run_id)
        return {**final, "checkpoint_path": str(result.checkpoint_path), "mlflow_run_id": run_id}

    def fail(self, run_id: str) -> None:
        """The trial's run FAILED, unless the sweep's stop marked it KILLED already: a stop ends the trials' training
        under them, and a trial may get here after the driver marked what was left (`tracking.mark_stopped`)."""
        if MlflowClient(self.tracking_uri).get_run(run_id).info.status != "KILLED":
            end_run(self.tracking_uri, run_id, "FAILED")


def trial_training(options, context: TrialContext) -> str:
    """What trained the trial's model: ``teacher`` (a split-0 trial that is the sweep's teacher), ``any-split`` (the
    sweep's any-split student, cut at the trial's split) or ``own`` (the trial's own training run)."""
    if reuses_teacher(options, context.teacher, context.student):
        return "teacher"
    return "any-split" if reuses_student(options, context.student) else "own"


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


def trained_seconds(uri: str, run_id: str) -> float:
    """Seconds the trial spent in training steps: its per-epoch ``train_s`` summed over epochs (the latest value per
    epoch, so epochs an interrupted attempt trained count once)."""
    per_epoch = {m.step: m.value for m in sorted(MlflowClient(uri).get_metric_history(run_id, "train_s"),
                                                 key=lambda m: m.timestamp)}
    return float(sum(per_epoch.values()))
