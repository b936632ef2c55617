"""The sweep's Tune side: the searcher (Optuna over the bound space), the scheduler, the resources each trial asks
for, and the `Tuner` itself."""
from __future__ import annotations

from dataclasses import dataclass

from orchestrator.console import quiet_optuna, verbose
from orchestrator.sweep.record import REFINE, SweepRecord
from search_spaces.base import BoundSpace, SweepSpec, Target
from trainables.trial import TrialContext, run_trial

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


def concurrent_slots(
    resources: dict[str, float], num_workers: int, use_gpu: bool, worker_cpus: float = WORKER_CPUS
) -> int:
    """How many trials' Train runs the cluster ``resources`` hold at once (at least 1)."""
    slots = int(resources.get("CPU", 0) // (num_workers * worker_cpus))
    if use_gpu:
        slots = min(slots, int(resources.get("GPU", 0) // num_workers))
    return max(1, slots)


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

    from orchestrator.sweep.stopping import StopOnFullDisk
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
        trial_trainable(context),
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
                                             TrialLines(record.num_samples), StopOnFullDisk()],
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )


def build_refine_tuner(splits: list[int], record: SweepRecord, context: TrialContext, sweep_dir: str,
                       max_failures: int):
    """A `Tuner` of one dedicated student per split of ``splits`` (`orchestrator.sweep.pareto.refine_candidates`): the
    sweep's own trials with no any-split set, so each trains its own student, kept as ``<sweep dir>/refine``."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from orchestrator.sweep.stopping import StopOnFullDisk
    from orchestrator.sweep.trial_lines import TrialLines

    return tune.Tuner(
        trial_trainable(context),
        param_space={"split": tune.grid_search(splits), "splits": None},
        tune_config=tune.TuneConfig(max_concurrent_trials=record.max_concurrent,
                                    trial_name_creator=TrialName(f"{record.sweep}-{REFINE}"),
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(name=REFINE, storage_path=sweep_dir, verbose=1 if verbose() else 0,
                                  callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), TrialLines(len(splits)),
                                             StopOnFullDisk()],
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )


def trial_trainable(context: TrialContext):
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
