"""Training: run one `TrainOptions` through Ray Train's `TorchTrainer`, recorded as one MLflow run (the command
line is `orchestrator.commands.train`).

The driver owns the MLflow run: it creates it (explicit experiment id, nested under a parent when asked), logs the
flattened options as params, lets a Ray Train callback on the controller log each epoch's metrics as they are
reported, and at the end logs the options file, the final checkpoint and the evaluation predictions as artifacts.
Workers never talk to MLflow. A sweep calls `run_training` inside a Tune trial and adds its own callbacks
(e.g. ``TuneReportCallback``).
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.console import train_log_level, worker_env
from orchestrator.disk_full import no_space_error
from orchestrator.publish import publish
from orchestrator.worker_cpus import default_worker_cpus, node_cpus
from trainables import storage
from trainables.data.label_sets import parse_labels
from trainables.model.source import model_location
from trainables.options import DATA, DISTILL, OPTIM, TrainOptions
from trainables.training.config import (
    OPTIMIZER_STATE,
    PREDICTIONS,
    DataSpec,
    DistillSpec,
    LoopConfig,
    OptimSpec,
    teacher_logits_file,
)
from trainables.training.entry import train_loop_per_worker

if TYPE_CHECKING:
    from orchestrator.tracking import Tracking

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
"""Files `log_checkpoint` leaves where they are: the weights (and optimizer state)."""
OPTIONS_FILE = "train_options.yaml"


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced."""

    metrics: dict
    """The last epoch's reported metrics (eval_* on the held-out split, train_* loss terms and speed)."""
    checkpoint_path: str | None
    """The trained model (HF save_pretrained layout plus its training record): the output directory itself when local
    (`publish`), else the final checkpoint's URI; None if none was saved."""
    mlflow_run_id: str | None
    """The MLflow run, or None without tracking."""
    wall_s: float
    """Seconds from the call to the end, start-up and evaluation included."""
    train_s: float
    """Seconds spent in training steps (all epochs of this run, evaluation excluded)."""


def run_training(
    options: TrainOptions,
    tracking: Tracking | None,
    *,
    storage_path: str | None = None,
    callbacks: Sequence[object] = (),
    probe: Callable[[], dict] | None = None,
) -> TrainResult:
    """Train per ``options`` on ``options.num_workers`` Ray Train workers; record in MLflow when ``tracking``.

    ``storage_path`` is where Ray Train keeps checkpoints (default: ``options.output_dir``): a directory or a bucket
    URI (`trainables.storage`); the result's checkpoint is a location of the same kind. ``callbacks`` are extra
    Ray Train callbacks for the run's RunConfig; ``probe`` runs on rank 0 before training and its figures join every
    report (`LoopConfig.probe`). ``options`` are taken as checked against their files (`check_sources`: the command,
    or the sweep's dry run, did it once). Raises ``ValueError`` with one line when a worker fails on bad input (data,
    checkpoint), and the worker's `OSError` when a write ran out of room (`orchestrator.disk_full`), after marking
    the MLflow run FAILED.
    """
    from orchestrator.tracking import MlflowEpochMetrics, end_run

    started = time.perf_counter()
    loop = replace(loop_config(options), probe=probe)
    root = storage.resolve(storage_path or options.output_dir)
    name = _run_label(options, tracking)
    run_id = _start_tracking(options, loop, tracking)
    all_callbacks = list(callbacks)
    if run_id is not None:
        all_callbacks.append(MlflowEpochMetrics(tracking.uri, run_id))
    try:
        coordinator_ready()
        result = _trainer(options, loop, root, name, all_callbacks).fit()
    except BaseException as err:
        if run_id is not None:
            end_run(tracking.uri, run_id, "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise worker_input_error(err) or no_space_error(err) or err
    checkpoint = storage.location_of(result.checkpoint.path, root) if result.checkpoint is not None else None
    if checkpoint is not None:
        checkpoint = publish(checkpoint, root)
    options.to_yaml(storage.join(root, name, OPTIONS_FILE))
    if run_id is not None:
        _log_outputs(tracking.uri, run_id, options, checkpoint)
        end_run(tracking.uri, run_id)
    metrics = dict(result.metrics or {})
    return TrainResult(metrics, checkpoint, run_id, time.perf_counter() - started, metrics.get("train_total_s", 0.0))


def _trainer(options: TrainOptions, loop, root: str, name: str, callbacks: list):
    import ray.train
    from ray.train.torch import TorchTrainer


    class Trainer(TorchTrainer):
        def _register_sigint_handler(self, controller) -> None:
            """Ctrl-C stops the command as SIGTERM does (`orchestrator.interrupt`: the run is marked KILLED, the
            last checkpoint and the resume command are named). Ray Train's own handler aborted the run and exited
            1 without a word. (ray is pinned: this is the method its fit calls to install that handler.)"""

    cpus = options.cpus_per_worker or default_worker_cpus(node_cpus(), options.num_workers)
    return Trainer(
        train_loop_per_worker,
        train_loop_config={"loop": loop},
        scaling_config=ray.train.ScalingConfig(num_workers=options.num_workers, use_gpu=options.use_gpu,
                                               resources_per_worker={"CPU": cpus}),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=root,
            callbacks=callbacks,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            failure_config=ray.train.FailureConfig(max_failures=options.max_failures),
            # Ray Train's print patch tees worker prints to stdout and its logger: every line would show twice.
            worker_runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
                                             **worker_env()}},
            logging_config=ray.train.LoggingConfig(log_level=train_log_level()),
        ),
    )


def coordinator_ready() -> None:
    """Ray's AutoscalingCoordinator, created (on this Ray, once) and answering before Ray Train's controller asks it.

    The controller registers each run's resources with that actor and waits 5 s for the answer (Ray 2.60's
    ``AUTOSCALING_REQUESTS_GET_TIMEOUT_S``). The first request also created the actor, a new worker process that
    imports Ray Data: on a busy machine (two `decouple train` at once on 2 cores) that took longer, and the
    controller printed a `GetTimeoutError` traceback on a run that then succeeded. Waited for here, with no limit,
    the request finds it ready."""
    import ray

    try:
        from ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator import (
            get_or_create_autoscaling_coordinator,
        )
    except ImportError:  # another Ray: its controller may not ask; readiness is no reason to fail training
        return
    ray.get(get_or_create_autoscaling_coordinator().get_reserved_resources.remote("decouple-ready"))


def loop_config(options: TrainOptions):
    """The workers' `LoopConfig`: options with every local path made absolute and every hub name replaced by its
    snapshot directory in this machine's Hugging Face cache (bucket URIs stay as they are). Each spec is its options
    section, by the options' names."""
    def absolute(path: str | None) -> str | None:
        if path is None:
            return None
        candidate = Path(path).expanduser()
        return str(candidate.resolve()) if candidate.exists() else path

    o = options
    from_teacher = o.mode == "student" and o.student_init == "teacher"
    # A bucket URI goes to the workers as it is: each loads its own node's copy.
    init = model_location(o.teacher, "teacher") if from_teacher else model_location(o.model)
    teacher = model_location(o.teacher, "teacher") if o.uses_teacher else None
    data = DataSpec(**{**o.section(DATA), "data": absolute(o.data), "eval_data": absolute(o.eval_data),
                       "labels": parse_labels(o.labels)}, seed=o.seed)
    logits_file = None
    if teacher is not None and o.teacher_logits_cache is not None:
        logits_file = teacher_logits_file(storage.resolve(o.teacher_logits_cache), teacher, data, o.precision)
    return LoopConfig(
        mode=o.mode,
        init_path=str(init),
        teacher_path=teacher,
        decoupled=o.decoupled,
        data=data,
        distill=DistillSpec(**o.section(DISTILL)),
        optim=OptimSpec(**o.section(OPTIM)),
        resume_from=absolute(o.resume_from),
        progress=o.progress,
        record=o.to_dict(),
        teacher_logits_file=logits_file,
    )


def _run_label(options: TrainOptions, tracking: Tracking | None) -> str:
    """A fresh Ray Train run name: reusing one would make Ray restore that run's checkpoint instead of starting."""
    label = (tracking.run_name if tracking and tracking.run_name else
             f"{options.mode}-k{options.split}-r{options.compression_ratio}")
    return f"{label}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _start_tracking(options: TrainOptions, loop, tracking: Tracking | None) -> str | None:
    from orchestrator.tracking import log_params, start_run

    if tracking is None:
        return None
    run_id = start_run(tracking, tags={"mode": options.mode, "task": options.task, "split": str(options.split)})
    log_params(tracking.uri, run_id, {**options.to_dict(), "resolved": {
        "init_path": loop.init_path, "teacher_path": loop.teacher_path, "data": loop.data.data,
    }})
    return run_id


def _log_outputs(uri: str, run_id: str, options: TrainOptions, checkpoint: str | None) -> None:
    """Options, final checkpoint and eval predictions."""
    import tempfile

    from orchestrator.tracking import log_artifact

    with tempfile.TemporaryDirectory() as folder:
        options.to_yaml(Path(folder) / OPTIONS_FILE)
        log_artifact(uri, run_id, Path(folder) / OPTIONS_FILE)
    if checkpoint is None:
        return
    folder = log_checkpoint(uri, run_id, checkpoint)
    if (folder / PREDICTIONS).is_file():
        log_artifact(uri, run_id, folder / PREDICTIONS)


def log_checkpoint(uri: str, run_id: str, checkpoint: str) -> Path:
    """The model's record in its MLflow run: the ``checkpoint`` tag holds its location, and the small files beside
    the weights (configs, metrics, predictions, tokenizer) go under the ``checkpoint/`` artifact. The weights stay
    where training wrote them, never copied a second time. Returns the local directory it was read from."""
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking import log_artifact

    MlflowClient(uri).set_tag(run_id, "checkpoint", checkpoint)
    folder = storage.local_copy(checkpoint)
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix not in WEIGHT_SUFFIXES and path.name not in (OPTIMIZER_STATE,
                                                                                        storage.COMPLETE):
            log_artifact(uri, run_id, path, "checkpoint")
    return folder


def worker_input_error(err: BaseException) -> ValueError | None:
    """The lowest rank's bad-input error (a ValueError) of a failed Ray Train run as one line, so the CLI prints it
    without a Ray traceback; None when no worker failed on bad input."""
    failures = getattr(err, "worker_failures", None) or {}
    for rank in sorted(failures):
        cause = getattr(failures[rank], "cause", None) or failures[rank]
        if isinstance(cause, ValueError):
            lines = [line for line in str(cause).splitlines() if line.strip()]
            return ValueError(lines[-1] if lines else type(cause).__name__)
    return None
