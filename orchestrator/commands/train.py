"""`decouple train`: its flags (one per `TrainOptions` field, over an optional YAML file) and `run`, which checks the
options and the data once, before Ray starts, then calls `orchestrator.train.run_training`."""
from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import fields
from pathlib import Path

from orchestrator import train as training
from orchestrator.data_check import check_training_data
from orchestrator.flags import add_option_flags
from orchestrator.ray_session import ray_session
from orchestrator.teacher_check import check_teacher
from trainables import storage
from trainables.model.source import model_location
from trainables.option_checks import check_sources
from trainables.options import DATA, DISTILL, MODEL, OPTIM, RUN, SECTIONS, TrainOptions
from trainables.tasks.registry import task_named
from trainables.trial_reuse import unfinished_checkpoint

DEFAULT_EXPERIMENT = "decoupled-train"
SECTION_TITLES = {RUN: "run: what runs where", DATA: "data: what it trains and is scored on",
                  MODEL: "model: how the student is decoupled", DISTILL: "distillation: how a student learns",
                  OPTIM: "optimisation: how parameters are updated"}
"""``--help``'s group of each options section (`trainables.options.SECTIONS`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="options file; command-line options override it")
    for section in SECTIONS:  # from_dict converts the values (one error text for YAML and flags)
        group = parser.add_argument_group(SECTION_TITLES[section])
        add_option_flags(group, TrainOptions, typed=False, only=TrainOptions().section(section))
    track = parser.add_argument_group("tracking")
    track.add_argument("--tracking-uri", help="MLflow URI (default: $MLFLOW_TRACKING_URI, else the project's "
                                               "sqlite:///<cwd>/runs/mlflow.db)")
    track.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                       help=f"MLflow experiment (default: {DEFAULT_EXPERIMENT})")
    track.add_argument("--run-name", help="MLflow run name")
    track.add_argument("--parent-run-id", help="nest the run under this MLflow run")
    track.add_argument("--no-tracking", action="store_true", help="do not record the run in MLflow")
    parser.add_argument("--json", action="store_true", help="end with one JSON object (metrics, model, MLflow run)")
    parser.add_argument("--storage-path", help="where Ray Train keeps checkpoints (default: output_dir)")
    parser.add_argument("--ray-address", help="Ray cluster to run on (default: $RAY_ADDRESS, else a local Ray started "
                                              "for this command)")


def run(args: argparse.Namespace) -> int:
    from orchestrator.tracking import Tracking, check_tracking_uri, project_tracking_uri, ready_store

    options = check_sources(quiet_for_json(options_from_args(args), args))
    if args.storage_path is not None:
        storage.check_directory_target(args.storage_path, "storage_path")
    if args.run_name is not None:  # it names the run's folder under the output directory
        storage.check_folder_name(args.run_name, "run_name", "--output-dir")
    classes = check_training_data(options)  # before Ray: bad data is one line here, not a worker's traceback
    if options.teacher is not None and (options.uses_teacher or options.init_source == options.teacher):
        check_teacher(options.teacher, model_location(options.teacher, "teacher"), options.task, classes)
    tracking = None
    if not args.no_tracking:
        uri = args.tracking_uri or project_tracking_uri()
        check_tracking_uri(uri)
        tracking = Tracking(uri, args.experiment, args.run_name, args.parent_run_id)
        ready_store(tracking.uri)
        if not storage.is_uri(options.output_dir):
            Path(options.output_dir).mkdir(parents=True, exist_ok=True)
    with ray_session(args.ray_address, dashboard=True):  # the dashboard serves Ray Train's placement-group cleaner
        result = training.run_training(options, tracking, storage_path=args.storage_path)
    summary = {k: round(v, 4) for k, v in result.metrics.items()
               if k.startswith("eval_") and isinstance(v, (int, float))}
    outcome = {"metrics": summary, "model": result.checkpoint_path, "mlflow_run_id": result.mlflow_run_id,
               "tracking_uri": tracking.uri if tracking else None, "wall_s": round(result.wall_s, 1),
               "train_s": round(result.train_s, 1)}
    print(json.dumps(outcome, indent=1) if args.json else closing_lines(options, outcome))
    return 0


def kept(args: argparse.Namespace) -> str:
    """What an interrupted `decouple train` kept (its newest epoch checkpoint) and the command that resumes from it."""
    options = options_from_args(args)
    root = storage.resolve(args.storage_path or options.output_dir)
    checkpoint = unfinished_checkpoint(root, options.epochs)
    if checkpoint is None:
        return f"no epoch had finished, so {root} holds no checkpoint to resume from; run the command again"
    again = without_flag(args._argv, "--resume-from")
    return (f"the last finished epoch's checkpoint is kept: {checkpoint}; resume with: "
            f"decouple {shlex.join(again)} --resume-from {shlex.quote(checkpoint)}")


def without_flag(argv: list[str], flag: str) -> list[str]:
    """``argv`` without ``flag`` and its value (``--flag VALUE`` or ``--flag=VALUE``)."""
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == flag:
            skip = True
        elif not word.startswith(flag + "="):
            out.append(word)
    return out


def closing_lines(options: TrainOptions, outcome: dict) -> str:
    """What a person reads when `decouple train` ends: the score, where the model is, what to run next."""
    metrics, model = outcome["metrics"], outcome["model"]
    scores = ", ".join(f"{k.removeprefix('eval_')} {v:.2f}" for k, v in metrics.items()
                       if k in ("eval_exact_match", "eval_f1", "eval_accuracy"))
    held_out = options.eval_data or "the held-out part of --data"
    lines = [f"trained {options.mode} (split {options.split}) in {outcome['wall_s']:.0f} s: {scores} on "
             f"{metrics.get('eval_examples', 0):.0f} examples of {held_out}"]
    if options.any_splits:
        per_split = ", ".join(f"k {k}: {metrics[f'eval_score_k{k}']:.2f}" for k in options.any_splits
                              if f"eval_score_k{k}" in metrics)
        lines.append(f"at every split ({task_named(options.task).metric_label}): {per_split}")
    lines.append(f"model:  {model}")
    if outcome["tracking_uri"]:
        lines.append(f"MLflow: run {outcome['mlflow_run_id']} in {outcome['tracking_uri']}")
    if model is None:
        return "\n".join(lines)
    data = f"--data {options.data} --task {options.task}"
    if options.mode == "teacher":
        layers = json.loads(storage.read_text(storage.join(model, "config.json")))["num_hidden_layers"]
        lines.append(f"next:   decouple train --mode student --teacher {model} {data} --split {max(1, layers // 2)} "
                     "--output-dir <dir>")
    else:
        split = f" --split <one of {options.splits}>" if options.any_splits else ""
        lines.append(f"next:   decouple eval --model {model} {data}{split}")
    return "\n".join(lines)


def quiet_for_json(options: TrainOptions, args: argparse.Namespace) -> TrainOptions:
    """With --json the command prints its object and no progress lines, unless --progress asks for them."""
    return options.replace(progress=False) if args.json and args.progress is None else options


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """YAML options (or the defaults) with every option given on the command line applied on top."""
    base = TrainOptions.from_yaml(args.config) if args.config else None
    names = [f.name for f in fields(TrainOptions)]
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    return TrainOptions.from_dict({**(base.to_dict() if base else {}), **given})
