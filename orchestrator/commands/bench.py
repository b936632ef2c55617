"""`decouple bench`: its flags and `run`; the measurement is `orchestrator.bench.run_bench` over
`trainables.speed.timing`."""
from __future__ import annotations

import argparse
import json

from orchestrator.bench import DEFAULT_EXPERIMENT, BenchOptions, format_table, log_to_mlflow, run_bench
from orchestrator.errors import UserError
from orchestrator.flags import add_option_flags, given_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()  # real weights, or random ones of a shape
    add_option_flags(source, BenchOptions, only=("model", "shape"))
    add_option_flags(parser, BenchOptions, exclude=("model", "shape"))
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    parser.add_argument("--tracking-uri", help="also log to this MLflow tracking URI")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")


def _parse_splits(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--splits {text!r}: expected comma-separated integers, e.g. 0,6,9,11") from None


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    given = given_options(args, BenchOptions)
    if "splits" in given:
        given["splits"] = _parse_splits(given["splits"])
    return BenchOptions(**given)


def run(args: argparse.Namespace) -> int:
    result = run_bench(options_from_args(args))
    print(format_table(result), flush=True)
    if args.tracking_uri:
        print(f"logged to MLflow run {log_to_mlflow(result, args.tracking_uri, args.experiment)}")
    if args.json:
        print(json.dumps(result.to_dict()))
    return 0
