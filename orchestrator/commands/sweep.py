"""`decouple sweep SPACE`: a Ray Tune + Optuna sweep over decoupled students (the run is `orchestrator.sweep_runner`).

SPACE is a module of `search_spaces` (split, compression, distillation, pareto) or the path of a copy you edited.
The command ends by printing the Pareto table, where the MLflow UI opens, and the `decouple report` line.
"""
from __future__ import annotations

import argparse

from orchestrator.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults live in `SweepOptions` only: an option left out here is left out there.
    parser.add_argument("space", help="search_spaces module (split, compression, distillation, pareto) or a .py path")
    parser.add_argument("--name", help="sweep name under --storage (default: the space's, or its next free "
                                       "-2, -3, ... when taken)")
    parser.add_argument("--num-samples", type=int, help="trials (default: the space's budget)")
    parser.add_argument("--smoke", action="store_true", help="the space's smoke size: a few short trials, little data")
    parser.add_argument("--storage", help="root of teachers, trial runs and sweeps (default runs)")
    parser.add_argument("--tracking-uri", help="MLflow URI (default sqlite:///<storage>/mlflow.db)")
    parser.add_argument("--experiment", help="MLflow experiment (default decoupled-sweep)")
    parser.add_argument("--resume", action="store_true", help="continue the sweep already in --storage")
    parser.add_argument("--teacher", help="a teacher instead of training one: a `decouple train` checkpoint, or a "
                                          "fine-tuned HF task model (directory or hub name; needs --eval-data to be "
                                          "scored)")
    parser.add_argument("--model", help="'minilm-l6' (default), a local HF checkpoint directory or a hub name "
                                        "(org/name[@revision])")
    parser.add_argument("--data", help="training data (default synthetic)")
    parser.add_argument("--eval-data", help="held-out data every trial and the teacher are scored on (default: a "
                                            "held-out part of --data)")
    parser.add_argument("--task", choices=("qa", "pair"), help="default qa")
    parser.add_argument("--labels", help="pair data: its labels as written, comma-separated in class order (default: "
                                         "declared by the data, else 0,1 or the GLUE sets)")
    parser.add_argument("--num-workers", type=int, help="Ray Train workers per trial (default 1)")
    parser.add_argument("--use-gpu", action="store_true", help="one GPU per training worker")
    parser.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the resources hold)")
    parser.add_argument("--ray-address", help="Ray cluster to join (default: start a local one)")
    parser.add_argument("--max-failures", type=int, help="retries of a failed trial (default 1)")
    parser.add_argument("--seed", type=int, help="default 0")


_FIELDS = ("space", "name", "num_samples", "smoke", "storage", "tracking_uri", "experiment", "resume", "teacher",
           "model", "data", "eval_data", "task", "labels", "num_workers", "use_gpu", "max_concurrent", "ray_address",
           "max_failures", "seed")


def disk_use(location: str) -> int | None:
    """Bytes under a local directory, each hard-linked file counted once; None for a bucket."""
    from pathlib import Path

    from trainables.storage import is_uri

    if is_uri(location):
        return None
    seen, total = set(), 0
    for path in Path(location).rglob("*"):
        stat = path.lstat()
        if path.is_file() and not path.is_symlink() and (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
    return total


def run(args: argparse.Namespace) -> int:
    from orchestrator.report import format_report
    from orchestrator.sweep_runner import SweepOptions, run_sweep

    try:
        options = SweepOptions(**{k: getattr(args, k) for k in _FIELDS if getattr(args, k) is not None})
    except ValueError as err:
        raise UserError(str(err)) from None
    outcome = run_sweep(options)
    record = outcome.record
    print(format_report(outcome.report))
    print(f"\nsweep {record.sweep}: {len(outcome.report.rows)} finished trials; {outcome.wall_s:.0f} s in all, "
          f"{outcome.tune_wall_s:.0f} s running trials ({record.max_concurrent} at a time)")
    if record.tracking_uri.startswith("sqlite:///"):
        print(f"MLflow UI:  mlflow ui --backend-store-uri {record.tracking_uri}")
    else:
        print(f"MLflow:     {record.tracking_uri} (experiment {record.experiment!r})")
    print(f"report:     decouple report {outcome.sweep_dir} [--max-drop 1.0] [--min-speedup X] [--json]")
    if outcome.results:
        print(f"results:    {outcome.results[0]} (and {len(outcome.results) - 1} plots beside it)")
    used = disk_use(options.storage)
    if used is not None:
        print(f"disk:       {options.storage} holds {used / 2**20:.0f} MiB (teachers, trial models, Tune state, MLflow)")
    return 0
