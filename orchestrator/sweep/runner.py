"""Run a sweep: validate its space, train (or reuse) the teacher, then Ray Tune + Optuna over Ray Train trials.

Layout under ``storage`` (a local directory, on a cluster one every node mounts, or a bucket URI such as
``s3://bucket/sweeps``; see `trainables.storage`)::

    mlflow.db                    the default MLflow store (sqlite; local storage only)
    teachers/<key>/              one teacher per (model, data, task, settings), reused by every sweep
    students/<key>/              one any-split student per (teacher, data, settings, splits), for spaces that ask
                                 for it (`SweepSpec.any_split`), reused by every sweep
    train/<sweep>-<trial id>/    each trial's Ray Train run (checkpoints)
    <sweep>/                     the Tune experiment; sweep.json records what `--resume` and `decouple report` need

The space is dry-run (`validate_spec`) before Ray starts, so a bad space fails with one line and no trial runs.
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.data_check import check_training_data
from orchestrator.errors import UserError
from orchestrator.ray_session import ray_session
from orchestrator.shared_storage import check_shared
from orchestrator.sweep.any_split import ensure_student, with_every_split
from orchestrator.sweep.options import SweepOptions
from orchestrator.sweep.pareto import refine_candidates
from orchestrator.sweep.record import RECORD, REFINE, SweepRecord
from orchestrator.sweep.report import DEFAULT_BUDGET, build_report, overhead
from orchestrator.sweep.results import command_line, write_results
from orchestrator.sweep.spaces import load_spec
from orchestrator.sweep.stopping import tune_stops_on_signals
from orchestrator.sweep.teacher import ensure_teacher, given_teacher, rescored_teacher, teacher_options
from orchestrator.sweep.tracking import (
    SWEEP_TAG,
    environment_tags,
    log_summary,
    mark_stopped,
    reconcile_trial_runs,
    start_sweep_run,
)
from orchestrator.sweep.trial import SweepTrialSteps
from orchestrator.sweep.tuner import WORKER_CPUS, build_refine_tuner, build_tuner, concurrent_slots, trial_trainable
from orchestrator.teacher_check import check_teacher
from orchestrator.tracking import (
    Tracking,
    check_tracking_uri,
    default_tracking_uri,
    end_run,
    log_metrics,
    log_params,
    ready_store,
)
from orchestrator.worker_cpus import default_worker_cpus, node_cpus
from search_spaces.base import SweepSpec, Target, validate_spec
from trainables.model.source import model_location, resolve_model, resolve_model_path
from trainables.option_checks import check_sources
from trainables.options import TrainOptions
from trainables.storage import exists, is_uri, join, resolve
from trainables.tasks.registry import task_named
from trainables.trial import TrialContext

if TYPE_CHECKING:
    from orchestrator.sweep.report import SweepReport

@dataclass
class SweepOutcome:
    """A finished `run_sweep`."""

    sweep_dir: str
    """The sweep's directory or bucket URI (what `decouple report` takes)."""
    record: SweepRecord
    report: "SweepReport"
    wall_s: float
    """Seconds of the whole command."""
    tune_wall_s: float
    """Seconds of `Tuner.fit` alone (the trials of this invocation)."""
    results: list[str] = field(default_factory=list)
    """``results.json`` and the plots written into the sweep directory (`orchestrator.sweep.results`)."""


def base_options(options: SweepOptions, spec: SweepSpec, model_path: Path | str, storage: str) -> dict[str, Any]:
    """Training options every trial of this sweep starts from (the space's settings under the command line's)."""
    smoke = spec.smoke
    base: dict[str, Any] = {
        **(task_named(options.task).smoke_lengths() if options.smoke else {}),
        **spec.settings,
        **(smoke.settings if options.smoke else {}),
        "model": str(model_path), "data": local_absolute(options.data),
        "eval_data": local_absolute(options.eval_data), "task": options.task,
        "labels": options.labels,
        "epochs": smoke.epochs if options.smoke else spec.epochs,
        "num_workers": options.num_workers, "use_gpu": options.use_gpu, "seed": options.seed,
        "max_failures": options.max_failures,
        "output_dir": join(storage, "train"), "progress": False,
        "teacher_logits_cache": join(storage, "teacher_logits"),
    }
    if options.smoke:
        base |= {"max_train_examples": smoke.max_train_examples, "max_eval_examples": smoke.max_eval_examples}
    return base


def local_absolute(source: str | None) -> str | None:
    """A data source as trials read it: a local file's absolute path (a trial runs in its own working directory, so
    a relative path from the command line was not found there), anything else as given."""
    if source is None or is_uri(source) or not Path(source).expanduser().exists():
        return source
    return os.path.abspath(Path(source).expanduser())


def sweep_name(spec: SweepSpec, smoke: bool) -> str:
    return f"{spec.name}-smoke" if smoke else spec.name


def choose_sweep(options: SweepOptions, spec: SweepSpec, storage: str) -> str:
    """The sweep's name under ``storage``: ``--name``, else the space's (``split``, ``split-smoke``). Without
    ``--name`` a new sweep takes the first free ``<name>-2``, ``-3``, ... and ``--resume`` the newest of them, so the
    same command can run again; a taken ``--name`` needs ``--resume``."""
    base = options.name or sweep_name(spec, options.smoke)
    existing = existing_sweeps(base, storage)
    if options.resume:
        if not existing:
            raise UserError(f"--resume: no sweep {base!r} in {storage} to continue; run it without --resume first")
        return base if options.name else existing[-1]
    if not existing:
        return base
    if options.name:
        raise UserError(f"{join(storage, base)} already holds a sweep; add --resume to continue it or pick another "
                        "--name")
    fresh = f"{base}-{len(existing) + 1}"
    print(f"[sweep] {join(storage, existing[-1])} exists; this sweep is {fresh}", flush=True)
    return fresh


def existing_sweeps(base: str, storage: str) -> list[str]:
    """``base``, ``base-2``, ``base-3``, ... as long as each exists under ``storage``."""
    names = []
    while exists(join(storage, base if not names else f"{base}-{len(names) + 1}")):
        names.append(base if not names else f"{base}-{len(names) + 1}")
    return names


def run_sweep(options: SweepOptions) -> SweepOutcome:
    """Validate, start Ray, get the teacher, run (or resume) the Tuner, summarise into MLflow. See the module doc."""
    from ray import tune

    start = time.perf_counter()
    spec, source = load_spec(options.space)
    storage = resolve(options.storage)
    name = choose_sweep(options, spec, storage)
    sweep_dir = join(storage, name)
    previous = SweepRecord.load(sweep_dir) if options.resume else None
    if options.tracking_uri is not None and not previous:
        check_tracking_uri(options.tracking_uri)
    base, target = _validated(spec, source, options, storage, previous)
    with claimed(sweep_dir, fresh=previous is None), ray_session(options.ray_address, dashboard=True):
        check_shared(storage)
        record = _resumed(previous) if previous else _new_record(spec, source, options, storage, base, target, name)
        steps = SweepTrialSteps(sweep=record.sweep, tracking_uri=record.tracking_uri, experiment=record.experiment,
                                parent_run_id=record.parent_run_id)
        context = TrialContext(
            sweep=record.sweep, base=record.base, teacher=record.teacher, train_storage=join(storage, "train"),
            steps=steps, bench=options.bench, worker_cpus=record.base["cpus_per_worker"],
            speed_cache=join(storage, "speed", record.sweep), student=record.student,
        )
        if previous and tune.Tuner.can_restore(sweep_dir):
            tuner = tune.Tuner.restore(sweep_dir, trainable=trial_trainable(context), resume_errored=True)
        else:  # a new sweep, or one stopped before Tune saved any state
            tuner = build_tuner(spec, target, record, context, storage, options.seed, options.max_failures)
        fit_start = time.perf_counter()
        try:
            with tune_stops_on_signals():
                tuner.fit()
                if options.refine and record.student:
                    refine(options, record, context, sweep_dir)
        except BaseException as err:
            mark_stopped(record.tracking_uri, record.parent_run_id, err)
            raise
        tune_wall_s = time.perf_counter() - fit_start
        report = summarise(record, sweep_dir, tune_wall_s)
        results = write_results(sweep_dir, record, report, command_line(), time.perf_counter() - start)
    return SweepOutcome(sweep_dir, record, report, time.perf_counter() - start, tune_wall_s, results)


def refine(options: SweepOptions, record: SweepRecord, context: TrialContext, sweep_dir: str) -> None:
    """Train dedicated students at the ``options.refine`` splits where one may change the recommendation
    (`refine_candidates` over the any-split trials' report), as ``<sweep dir>/refine``."""
    from ray import tune


    splits = refine_candidates(build_report(sweep_dir).rows, DEFAULT_BUDGET, options.refine)
    if not splits:
        print("[sweep] --refine: no split outside the budget is faster than the recommendation; nothing to refine",
              flush=True)
        return
    print(f"[sweep] --refine: training dedicated students at split {', '.join(map(str, splits))} ...", flush=True)
    folder = join(sweep_dir, REFINE)
    if tune.Tuner.can_restore(folder):
        tuner = tune.Tuner.restore(folder, trainable=trial_trainable(context), resume_errored=True)
    else:
        tuner = build_refine_tuner(splits, record, context, sweep_dir, options.max_failures)
    tuner.fit()


@contextmanager
def claimed(sweep_dir: str, fresh: bool) -> Iterator[None]:
    """A new sweep's local directory, made now or refused: two sweeps started at once with one name both passed the
    name check, then ran in one directory, each overwriting the other's state. Left again (removed) when the sweep
    fails before it recorded itself (``sweep.json``), so the name stays free. Bucket storage has no atomic create
    and is not claimed."""
    if not fresh or is_uri(sweep_dir):
        yield
        return
    try:
        Path(sweep_dir).mkdir(parents=True)
    except FileExistsError:
        raise UserError(f"{sweep_dir} was taken by another sweep started at the same time; let it run, or pick "
                        "another --name") from None
    try:
        yield
    except BaseException:
        if not (Path(sweep_dir) / RECORD).exists():
            shutil.rmtree(sweep_dir, ignore_errors=True)
        raise


def _validated(spec: SweepSpec, source: Path, options: SweepOptions, storage: str,
               previous: SweepRecord | None) -> tuple[dict[str, Any], Target]:
    """The trials' base options and the target, after `validate_spec` proved the space legal on them."""
    if previous:
        base = checked = previous.base
    else:
        model = resolve_model_path(options.model)  # checked (a bucket's model downloaded) here; workers get the URI
        base = base_options(options, spec, options.model if is_uri(options.model) else model, storage)
        teacher = options.teacher and model_location(options.teacher, "teacher")
        checked = {**base, "teacher": teacher or base["model"]}  # the teacher-to-be has the model's shape
        classes = check_training_data(check_sources(TrainOptions.from_dict(teacher_options(base))))
        if teacher:
            check_teacher(options.teacher, teacher, options.task, classes)
            given_teacher(options.teacher, options.eval_data)  # its score is known, or can be measured
    target = Target.from_checkpoint(resolve_model(base["model"]), base["epochs"])
    if spec.any_split and not previous:
        base, checked = with_every_split(base, target), with_every_split(checked, target)
    validate_spec(spec, target, checked, source=str(source), seed=options.seed)
    return base, target


def trial_resources(options: SweepOptions, nodes: list[float], resources: dict[str, float]) -> tuple[int, int]:
    """CPUs per training worker and trials at once: ``--cpus-per-worker`` and ``--max-concurrent`` as given; without
    the first, one machine's CPUs shared among ``--max-concurrent`` trials' workers, or 1 CPU each when that is not
    given either (`orchestrator.worker_cpus`); without the second, as many trials as the cluster holds."""
    cpus = options.cpus_per_worker or (
        default_worker_cpus(nodes, options.num_workers, options.max_concurrent) if options.max_concurrent
        else int(WORKER_CPUS))
    slots = options.max_concurrent or concurrent_slots(resources, options.num_workers, options.use_gpu, cpus)
    return cpus, slots


def _resumed(record: SweepRecord) -> SweepRecord:
    from mlflow.tracking import MlflowClient

    MlflowClient(record.tracking_uri).update_run(record.parent_run_id, status="RUNNING")
    # A sweep recorded before `cpus_per_worker` existed ran its training workers on Ray Train's one CPU each.
    return replace(record, base={"cpus_per_worker": int(WORKER_CPUS), **record.base})


def _new_record(spec: SweepSpec, source: Path, options: SweepOptions, storage: str, base: dict[str, Any],
                target: Target, name: str) -> SweepRecord:
    """Train or take the teacher, size the concurrency, open the MLflow parent run, and write ``sweep.json``."""
    import ray
    from mlflow.tracking import MlflowClient


    tracking_uri = options.tracking_uri or default_tracking_uri(storage)
    ready_store(tracking_uri)
    nodes = node_cpus()
    cpus, slots = trial_resources(options, nodes, ray.cluster_resources())
    base = {**base, "cpus_per_worker": cpus}
    # The teacher is trained or scored before any trial, alone: it takes one machine's CPUs unless told otherwise.
    alone_cpus = options.cpus_per_worker or max(cpus, default_worker_cpus(nodes, options.num_workers))
    alone = {**base, "cpus_per_worker": alone_cpus}
    num_samples = options.num_samples or spec.trials(target, options.smoke)
    params = {"space": spec.name, "source": str(source), "metrics": ",".join(spec.metrics),
              "modes": ",".join(spec.modes), "scheduler": spec.scheduler, "sampler": spec.sampler,
              "smoke": options.smoke, "num_samples": num_samples, "max_concurrent": slots,
              **{f"base.{k}": v for k, v in base.items()}}
    tags = {SWEEP_TAG: name, "space_source": str(source), "mlflow.note.content": spec.description,
            **environment_tags(Path(__file__).parents[2])}
    parent = start_sweep_run(Tracking(tracking_uri, options.experiment, f"sweep-{name}"), params, source, tags)
    try:
        if options.teacher:
            teacher = given_teacher(options.teacher, options.eval_data)
            if options.eval_data is not None:  # its metrics.json scored it on other data, if it has one
                teacher = rescored_teacher(teacher, alone)
        else:  # a teacher trained now is a child of this sweep's run; a reused one is named by its run id
            teacher = ensure_teacher(alone, storage, tracking_uri, options.experiment, parent_run_id=parent)
    except BaseException as err:
        mark_stopped(tracking_uri, parent, err)
        raise
    log_params(tracking_uri, parent, {"teacher": teacher["path"], "teacher_accuracy": teacher["accuracy"]})
    if teacher.get("mlflow_run_id"):
        MlflowClient(tracking_uri).set_tag(parent, "teacher_run_id", teacher["mlflow_run_id"])
    student = None
    if spec.any_split:
        try:
            student = ensure_student({**alone, "teacher": teacher["path"]}, storage, tracking_uri, options.experiment,
                                     parent_run_id=parent)
        except BaseException as err:
            mark_stopped(tracking_uri, parent, err)
            raise
        log_params(tracking_uri, parent, {"any_split_student": student["path"]})
    record = SweepRecord(
        sweep=name, space=options.space, source=str(source), smoke=options.smoke, num_samples=num_samples,
        max_concurrent=slots, base={**base, "teacher": teacher["path"]}, teacher=teacher, tracking_uri=tracking_uri,
        experiment=options.experiment, parent_run_id=parent, metrics=list(spec.metrics), modes=list(spec.modes),
        target=asdict(target), student=student,
    )
    record.save(join(storage, name))
    return record


def summarise(record: SweepRecord, sweep_dir: str, tune_wall_s: float) -> "SweepReport":
    """The sweep's report (default budget), logged to its MLflow parent run with this invocation's Tune wall time
    and the per-trial overhead; the parent run is then closed."""
    report = build_report(sweep_dir)
    reconcile_trial_runs(record.tracking_uri, record.parent_run_id, report.trial_ids)
    log_summary(record.tracking_uri, record.parent_run_id, report.rows, report.front, report.best, record.teacher)
    log_metrics(record.tracking_uri, record.parent_run_id, {"tune_wall_s": tune_wall_s, **{
        f"mean_{k}": v for k, v in (overhead(report.rows) or {}).items() if k != "trials"}}, step=0)
    end_run(record.tracking_uri, record.parent_run_id)
    return report

