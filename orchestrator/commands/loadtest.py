"""`decouple loadtest`: its flags and `run`; the load is `orchestrator.loadtest`."""
from __future__ import annotations

import argparse
import json

from orchestrator.flags import add_option_flags, given_options
from orchestrator.loadtest import LoadtestOptions, loadtest, summary_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_flags(parser, LoadtestOptions)
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def run(args: argparse.Namespace) -> int:
    summary = loadtest(LoadtestOptions(**given_options(args, LoadtestOptions)))
    print(json.dumps(summary) if args.json else "\n".join(summary_lines(summary)), flush=True)
    return 0
