"""`decouple eval`: its flags and `run`; the evaluation is `orchestrator.evaluate`."""
from __future__ import annotations

import argparse
import json
import sys

from orchestrator.evaluate import EvalOptions, evaluate, settle, untrained_head_note
from orchestrator.flags import add_option_flags, given_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_flags(parser, EvalOptions)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object as the last line (and no progress line on a terminal)")


def run(args: argparse.Namespace) -> int:
    options, lines = settle(EvalOptions(**given_options(args, EvalOptions)))
    for line in lines:
        print(f"[eval] {line}", file=sys.stderr, flush=True)

    def say_note() -> None:  # once data and model loaded fine, before the scores: they may take minutes
        note = untrained_head_note(options)
        if note:
            print(note, file=sys.stderr, flush=True)

    result = evaluate(options, show_progress=not args.json, before_scoring=say_note)
    if args.json:
        print(json.dumps(result))
    else:
        print("  ".join(f"{k}={v}" for k, v in result.items()))
    return 0

