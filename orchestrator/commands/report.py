"""`decouple report SWEEP`: its flags and `run`; the report is `orchestrator.sweep.report`."""
from __future__ import annotations

import argparse
import json

from orchestrator.sweep.pareto import Budget
from orchestrator.sweep.report import DEFAULT_BUDGET, build_report, format_report
from trainables.storage import resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", help="sweep directory (<storage>/<sweep name>, printed by `decouple sweep`)")
    parser.add_argument("--max-drop", type=float, default=DEFAULT_BUDGET.max_drop,
                        help="largest accuracy drop below the teacher, in points (default %(default)s)")
    parser.add_argument("--min-speedup", type=float, default=None,
                        help="smallest speedup (an unreliable one counts up to its FLOPs bound)")
    parser.add_argument("--max-state-bytes-per-token", "--max-bytes-per-token", type=float, default=None,
                        help="largest state_bytes_per_token: bytes of one passage token's cached state")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args: argparse.Namespace) -> int:
    budget = Budget(args.max_drop, args.min_speedup, args.max_state_bytes_per_token)
    report = build_report(resolve(args.sweep), budget)
    print(json.dumps(report.to_dict(), default=str) if args.json else format_report(report))
    return 0
