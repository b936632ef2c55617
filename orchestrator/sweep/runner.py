"""Run a sweep: validate its space, train (or reuse) the teacher, then Ray Tune + Optuna over Ray Train trials.

Layout under ``storage`` (a local directory, on a cluster one every node mounts, or a bucket URI such as
``s3://bucket/sweeps``; see `trainables.storage`)::

    mlflow.db                    the default MLflow store (sqlite; local storage only)
    teachers/<key>/              one teacher per (model, data, task, settings), reused by every sweep
    train/<sweep>-<trial id>/    each trial's Ray Train run (checkpoints)
    <sweep>/                     the Tune experiment; sweep.json records what `--resume` and `decouple report` need

The space is dry-run (`validate_spec`) before Ray starts, so a bad space fails with one line and no trial runs.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.data_check import check_training_data
from orchestrator.errors import UserError
from orchestrator.ray_session import ray_session
from orchestrator.shared_storage import check_shared
from orchestrator.sweep.options import SweepOptions
from orchestrator.sweep.record import SweepRecord
from orchestrator.sweep.results import command_line, write_results
from orchestrator.sweep.trial import SweepTrialSteps
from orchestrator.tracking import default_tracking_uri
from search_spaces.base import STUDENT_ONLY, SweepSpec, Target, validate_spec
from trainables.model.source import resolve_model
from trainables.options import TrainOptions
from trainables.storage import exists, is_uri, join, read_text, resolve, write_text
from trainables.trial import ACCURACY_KEY, TrialContext, run_trial
from trainables.trial_reuse import teacher_key

if TYPE_CHECKING:
    from orchestrator.report import SweepReport

TEACHER_RECORD = "teacher.json"
DRIVER_MEMORY = 256 * 2**20
"""Logical memory a trial's Tune function asks for: it only drives its Train run (whose workers hold the CPUs/GPUs;
its rank-0 worker also times the trial's speed), so it takes no CPU that a training worker could use. A trial that
reuses the teacher trains nothing, and a separate one-worker Ray task outside its placement group times it."""
ON_HEAD = 0.001
"""Share of the head node's built-in resource each trial's Tune function asks for: trial drivers (and the Ray Train
controllers, which Ray places beside them) stay on the head, so they survive the loss of a worker node and reach an
MLflow server bound to the head's localhost (cluster.yaml)."""
WORKER_CPUS = 1.0
"""CPUs of one Ray Train worker (Ray Train's default `ScalingConfig`)."""
ASHA_REDUCTION = 2
"""ASHA keeps the best 1/2 of the trials at each rung (rungs after 1, 2, 4, ... epochs)."""
SAMPLER_POPULATION = 8
"""NSGA-II population size (generations of this many trials)."""


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


# ---- loading a space ----------------------------------------------------------------------------------------------
def load_spec(space: str) -> tuple[SweepSpec, Path]:
    """The ``SPEC`` of a `search_spaces` module name or of a ``.py`` file, and the file it came from."""
    if space.endswith(".py"):
        path = Path(space).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"{space}: no such search-space file")
        # A stable module name lets the searcher's saved state (which refers to the space's function) load on resume.
        name = "decouple_space_" + hashlib.sha1(str(path).encode()).hexdigest()[:10]
        module = sys.modules.get(name) or _import_file(name, path)
    elif Path(space).suffix or "/" in space or "\\" in space:
        raise UserError(f"{space}: a search space is a Python file defining SPEC (a .py path) or the name of a "
                        "shipped space (split, compression, distillation, pareto); see search_spaces/split.py")
    else:
        try:
            module = importlib.import_module(f"search_spaces.{space}")
        except ModuleNotFoundError:
            message = f"{space}: no module search_spaces/{space}.py; name a shipped space or a .py file"
            raise UserError(message) from None
        path = Path(module.__file__)
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, SweepSpec):
        raise UserError(f"{path}: defines no SPEC = SweepSpec(...); see search_spaces/split.py")
    return spec, path


def _import_file(name: str, path: Path):
    loader_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise UserError(f"{path}: cannot be imported: {type(err).__name__}: {err}") from None
    return module


# ---- sizing -------------------------------------------------------------------------------------------------------
def concurrent_slots(
    resources: dict[str, float], num_workers: int, use_gpu: bool, worker_cpus: float = WORKER_CPUS
) -> int:
    """How many trials' Train runs the cluster ``resources`` hold at once (at least 1)."""
    slots = int(resources.get("CPU", 0) // (num_workers * worker_cpus))
    if use_gpu:
        slots = min(slots, int(resources.get("GPU", 0) // num_workers))
    return max(1, slots)


def base_options(options: SweepOptions, spec: SweepSpec, model_path: Path | str, storage: str) -> dict[str, Any]:
    """Training options every trial of this sweep starts from (the space's settings under the command line's)."""
    smoke = spec.smoke
    base: dict[str, Any] = {
        **(smoke.lengths(options.task) if options.smoke else {}),
        **spec.settings,
        **(smoke.settings if options.smoke else {}),
        "model": str(model_path), "data": options.data, "eval_data": options.eval_data, "task": options.task,
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


# ---- the teacher --------------------------------------------------------------------------------------------------
def teacher_options(base: dict[str, Any]) -> dict[str, Any]:
    """The full-model training run every student of the sweep distils from."""
    values = {k: v for k, v in base.items() if k not in STUDENT_ONLY and k not in ("teacher", "split")}
    return values | {"mode": "teacher"}


def ensure_teacher(base: dict[str, Any], storage: str, tracking_uri: str, experiment: str,
                   parent_run_id: str | None = None) -> dict[str, Any]:
    """Train the teacher once into ``<storage>/teachers/<key>`` (its MLflow run nested under ``parent_run_id``, the
    sweep that needed it first), or reuse the one already there."""
    from orchestrator.tracking import Tracking
    from orchestrator.train import run_training
    from trainables.options import TrainOptions

    options = TrainOptions.from_dict(teacher_options(base))
    key = teacher_key(options)
    folder = join(storage, "teachers", key)
    if exists(join(folder, TEACHER_RECORD)):
        return json.loads(read_text(join(folder, TEACHER_RECORD)))
    options = options.replace(output_dir=folder)
    print(f"[sweep] training the teacher {key} ({options.epochs} epochs on {options.data}) ...", flush=True)
    result = run_training(options, Tracking(tracking_uri, experiment, f"teacher-{key}", parent_run_id), storage_path=folder)
    record = {"path": str(result.checkpoint_path), "accuracy": float(result.metrics[ACCURACY_KEY]), "key": key,
              "mlflow_run_id": result.mlflow_run_id, "wall_s": result.wall_s, "train_s": result.train_s,
              "metrics": result.metrics}
    write_text(join(folder, TEACHER_RECORD), json.dumps(record, indent=1, default=str))
    return record


def given_teacher(path: str, eval_data: str | None = None) -> dict[str, Any]:
    """A teacher passed with ``--teacher`` (a directory, a bucket URI or a hub name): its accuracy is the one its
    training run recorded (metrics.json); a model without that record (a hub model) needs ``eval_data`` to be scored
    on (`rescored_teacher`), and has no accuracy until then."""
    from trainables.model.source import model_location

    try:
        folder = model_location(path, "--teacher")
    except ValueError as err:
        raise UserError(str(err)) from None
    metrics = join(folder, "metrics.json")
    if not exists(metrics):
        if eval_data is None:
            raise UserError(f"--teacher {path}: no metrics.json (not a `decouple train` checkpoint), so its score is "
                            "unknown; pass --eval-data for the sweep to score it there")
        return {"path": folder, "accuracy": None, "key": "given", "train_s": 0.0, "metrics": {}}
    values = json.loads(read_text(metrics))
    if ACCURACY_KEY not in values:
        raise UserError(f"--teacher {path}: metrics.json has no {ACCURACY_KEY!r}; evaluate it with `decouple train`")
    return {"path": folder, "accuracy": float(values[ACCURACY_KEY]), "key": "given", "train_s": 0.0,
            "metrics": values}


def rescored_teacher(teacher: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """``teacher`` scored on the sweep's held-out data (``base['eval_data']``), by a one-CPU Ray task."""
    import ray

    from orchestrator.evaluate import EvalOptions, evaluate

    options = EvalOptions(model=teacher["path"], data=base["eval_data"], task=base["task"], split=0,
                          max_passage_len=base.get("max_passage_len", TrainOptions.max_passage_len),
                          doc_stride=base.get("doc_stride", TrainOptions.doc_stride), labels=base.get("labels"))
    print(f"[sweep] scoring the teacher on {base['eval_data']} ...", flush=True)
    scores = ray.get(ray.remote(num_cpus=WORKER_CPUS)(evaluate).remote(options))
    accuracy = scores["f1"] if base["task"] == "qa" else scores["accuracy"]
    return {**teacher, "accuracy": float(accuracy), "metrics": {**teacher["metrics"], ACCURACY_KEY: accuracy}}


# ---- Tune ---------------------------------------------------------------------------------------------------------
def sampler_for(spec: SweepSpec, seed: int):
    import optuna

    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=SAMPLER_POPULATION, seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def objective(spec: SweepSpec) -> tuple[str | list[str], str | list[str]]:
    """Tune's metric and mode: plain for one objective, lists for several."""
    if spec.multi_objective:
        return list(spec.metrics), list(spec.modes)
    return spec.metrics[0], spec.modes[0]


def build_searcher(spec: SweepSpec, target: Target, seed: int):
    """OptunaSearch over the space bound to ``target``, its enqueued points first."""
    from ray.tune.search.optuna import OptunaSearch

    from orchestrator.console import quiet_optuna
    from search_spaces.base import BoundSpace

    quiet_optuna()

    metric, mode = objective(spec)
    return OptunaSearch(BoundSpace(spec.define_by_run, target), metric=metric, mode=mode,
                        points_to_evaluate=spec.points(target) or None, sampler=sampler_for(spec, seed))


def build_tuner(spec: SweepSpec, target: Target, record: SweepRecord, context: TrialContext, storage: str, seed: int,
                max_failures: int):
    """A fresh `Tuner`: OptunaSearch over the bound space, ASHA when asked, concurrency from ``record``."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler

    from orchestrator.console import verbose
    from orchestrator.sweep.trial_lines import TrialLines

    metric, mode = objective(spec)
    searcher = build_searcher(spec, target, seed)
    scheduler = None
    if spec.scheduler == "asha" and target.epochs > 1:
        # Rungs after epochs 1, 2, 4, ... below the last: a trial that reached its last epoch is never stopped, so
        # it always sends its closing report (a one-epoch sweep has nothing to stop early).
        scheduler = ASHAScheduler(metric=metric, mode=mode, max_t=target.epochs, grace_period=1,
                                  reduction_factor=ASHA_REDUCTION, stop_last_trials=False)
    return tune.Tuner(
        _trainable(context),
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=record.num_samples,
            max_concurrent_trials=record.max_concurrent, trial_name_creator=TrialName(record.sweep),
            trial_dirname_creator=trial_dirname,
        ),
        # The result files `decouple report` reads, named here: a quiet console turns Tune's automatic loggers off
        # to leave out its TensorBoard logger (`orchestrator.console`).
        # A quiet console shows one line per trial (`TrialLines`) instead of Tune's status and result tables.
        run_config=tune.RunConfig(name=record.sweep, storage_path=storage, verbose=1 if verbose() else 0,
                                  callbacks=[CSVLoggerCallback(), JsonLoggerCallback(),
                                             TrialLines(record.num_samples)],
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )


def _trainable(context: TrialContext):
    from ray import tune

    from ray._common.constants import HEAD_NODE_RESOURCE_NAME

    resources = {"cpu": 0, "memory": DRIVER_MEMORY, HEAD_NODE_RESOURCE_NAME: ON_HEAD}
    return tune.with_resources(tune.with_parameters(run_trial, context=context), resources)


@dataclass(frozen=True)
class TrialName:
    sweep: str

    def __call__(self, trial) -> str:
        return f"{self.sweep}-{trial.trial_id}"


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


# ---- the whole sweep ----------------------------------------------------------------------------------------------
def sweep_name(spec: SweepSpec, smoke: bool) -> str:
    return f"{spec.name}-smoke" if smoke else spec.name


def choose_sweep(options: SweepOptions, spec: SweepSpec, storage: str) -> str:
    """The sweep's name under ``storage``: ``--name``, else the space's (``split``, ``split-smoke``). Without
    ``--name`` a new sweep takes the first free ``<name>-2``, ``-3``, ... and ``--resume`` the newest of them, so the
    same command can run again; a taken ``--name`` needs ``--resume``."""
    base = options.name or sweep_name(spec, options.smoke)
    existing = _existing(base, storage)
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


def _existing(base: str, storage: str) -> list[str]:
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
    base, target = _validated(spec, source, options, storage, previous)
    with ray_session(options.ray_address, dashboard=True):
        check_shared(storage)
        record = _resumed(previous) if previous else _new_record(spec, source, options, storage, base, target, name)
        steps = SweepTrialSteps(sweep=record.sweep, tracking_uri=record.tracking_uri, experiment=record.experiment,
                                parent_run_id=record.parent_run_id)
        context = TrialContext(
            sweep=record.sweep, base=record.base, teacher=record.teacher, train_storage=join(storage, "train"),
            steps=steps, bench=options.bench, worker_cpus=WORKER_CPUS, speed_cache=join(storage, "speed", record.sweep),
        )
        if previous and tune.Tuner.can_restore(sweep_dir):
            tuner = tune.Tuner.restore(sweep_dir, trainable=_trainable(context), resume_errored=True)
        else:  # a new sweep, or one stopped before Tune saved any state
            tuner = build_tuner(spec, target, record, context, storage, options.seed, options.max_failures)
        fit_start = time.perf_counter()
        tuner.fit()
        tune_wall_s = time.perf_counter() - fit_start
        report = summarise(record, sweep_dir, tune_wall_s)
        results = write_results(sweep_dir, record, report, command_line(), time.perf_counter() - start)
    return SweepOutcome(sweep_dir, record, report, time.perf_counter() - start, tune_wall_s, results)


def _validated(spec: SweepSpec, source: Path, options: SweepOptions, storage: str,
               previous: SweepRecord | None) -> tuple[dict[str, Any], Target]:
    """The trials' base options and the target, after `validate_spec` proved the space legal on them."""
    from orchestrator.teacher_check import check_teacher
    from trainables.model.source import model_location, resolve_model_path
    from trainables.option_checks import check_sources

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
    validate_spec(spec, target, checked, source=str(source), seed=options.seed)
    return base, target


def _resumed(record: SweepRecord) -> SweepRecord:
    from mlflow.tracking import MlflowClient

    MlflowClient(record.tracking_uri).update_run(record.parent_run_id, status="RUNNING")
    return record


def _new_record(spec: SweepSpec, source: Path, options: SweepOptions, storage: str, base: dict[str, Any],
                target: Target, name: str) -> SweepRecord:
    """Train or take the teacher, size the concurrency, open the MLflow parent run, and write ``sweep.json``."""
    import ray

    from mlflow.tracking import MlflowClient

    from orchestrator.sweep.tracking import SWEEP_TAG, environment_tags, start_sweep_run
    from orchestrator.tracking import Tracking, end_run, log_params

    tracking_uri = options.tracking_uri or default_tracking_uri(storage)
    slots = options.max_concurrent or concurrent_slots(ray.cluster_resources(), options.num_workers, options.use_gpu)
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
                teacher = rescored_teacher(teacher, base)
        else:  # a teacher trained now is a child of this sweep's run; a reused one is named by its run id
            teacher = ensure_teacher(base, storage, tracking_uri, options.experiment, parent_run_id=parent)
    except BaseException:
        end_run(tracking_uri, parent, "FAILED")
        raise
    log_params(tracking_uri, parent, {"teacher": teacher["path"], "teacher_accuracy": teacher["accuracy"]})
    if teacher.get("mlflow_run_id"):
        MlflowClient(tracking_uri).set_tag(parent, "teacher_run_id", teacher["mlflow_run_id"])
    record = SweepRecord(
        sweep=name, space=options.space, source=str(source), smoke=options.smoke, num_samples=num_samples,
        max_concurrent=slots, base={**base, "teacher": teacher["path"]}, teacher=teacher, tracking_uri=tracking_uri,
        experiment=options.experiment, parent_run_id=parent, metrics=list(spec.metrics), modes=list(spec.modes),
        target=asdict(target),
    )
    record.save(join(storage, name))
    return record


def summarise(record: SweepRecord, sweep_dir: str, tune_wall_s: float) -> "SweepReport":
    """The sweep's report (default budget), logged to its MLflow parent run with this invocation's Tune wall time
    and the per-trial overhead; the parent run is then closed."""
    from orchestrator.report import build_report, overhead
    from orchestrator.sweep.tracking import log_summary, reconcile_trial_runs
    from orchestrator.tracking import end_run, log_metrics

    report = build_report(sweep_dir)
    reconcile_trial_runs(record.tracking_uri, record.parent_run_id, report.trial_ids)
    log_summary(record.tracking_uri, record.parent_run_id, report.rows, report.front, report.best, record.teacher)
    log_metrics(record.tracking_uri, record.parent_run_id, {"tune_wall_s": tune_wall_s, **{
        f"mean_{k}": v for k, v in (overhead(report.rows) or {}).items() if k != "trials"}}, step=0)
    end_run(record.tracking_uri, record.parent_run_id)
    return report

