"""`decouple sweep SPACE`: a Ray Tune + Optuna sweep over decoupled students (the run is `orchestrator.sweep.runner`).

SPACE is a module of `search_spaces` (split, compression, distillation, pareto) or the path of a copy you edited.
The command ends by printing the Pareto table, where the MLflow UI opens, and the `decouple report` line.
"""
from __future__ import annotations

import argparse

from orchestrator.errors import UserError
from orchestrator.flags import add_option_flags, given_options
from orchestrator.sweep.options import SweepOptions
from orchestrator.sweep.record import RECORD
from orchestrator.sweep.report import format_report
from orchestrator.sweep.spaces import load_spec
from trainables.storage import exists, is_uri, join, resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_flags(parser, SweepOptions, exclude=("bench",))  # a nested dataclass: set from Python only


def disk_use(location: str) -> int | None:
    """Bytes under a local directory, each hard-linked file counted once; None for a bucket."""
    from pathlib import Path


    if is_uri(location):
        return None
    seen, total = set(), 0
    for path in Path(location).rglob("*"):
        stat = path.lstat()
        if path.is_file() and not path.is_symlink() and (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
    return total


def kept(args: argparse.Namespace) -> str:
    """What a sweep that stopped early kept (its finished trials, Tune's and the searcher's state) and how to go on:
    ``--resume`` once it has recorded itself, else the same command again."""
    import shlex

    again = [word for word in args._argv if word != "--resume"]
    storage = args.storage or SweepOptions.storage  # the flag's default is the dataclass's
    if not args.resume and not _recorded_now(args, storage):
        return (f"it stopped before recording itself under {storage}, so there is nothing to continue; run the "
                f"command again: decouple {shlex.join(again)}")
    return (f"its finished trials and Tune's state are kept under {storage}; continue it with: "
            f"decouple {shlex.join(again)} --resume")


def _recorded_now(args: argparse.Namespace, storage: str) -> bool:
    """Whether this command's sweep recorded itself (its sweep.json, written since the command started; a sweep that
    stops before that is removed again, `orchestrator.sweep.runner.claimed`)."""
    import os

    from orchestrator.sweep.runner import existing_sweeps, sweep_name

    storage = resolve(storage)
    names = existing_sweeps(args.name or sweep_name(load_spec(args.space)[0], args.smoke), storage)
    record = names and join(storage, (args.name or names[-1]), RECORD)
    if not record or not exists(record):
        return False
    return is_uri(record) or os.stat(record).st_mtime >= args._started


def run(args: argparse.Namespace) -> int:
    from orchestrator.sweep.runner import run_sweep

    try:
        options = SweepOptions(**given_options(args, SweepOptions))
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
