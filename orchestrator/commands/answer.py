"""`decouple answer`: its flags and `run`; the search is `orchestrator.answer`."""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict

from orchestrator.answer import AnswerOptions, answer, settings_line
from orchestrator.flags import add_option_flags, given_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_flags(parser, AnswerOptions)
    parser.add_argument("--json", action="store_true", help="print the answer as one JSON object")


def run(args: argparse.Namespace) -> int:
    options = AnswerOptions(**given_options(args, AnswerOptions))
    result, cut = answer(options)
    print(f"[answer] {settings_line(options)}", file=sys.stderr, flush=True)
    if cut:
        print(f"[answer] {cut}", file=sys.stderr, flush=True)
    if args.json:
        record = asdict(result)
        record["score"] = record["score"] if math.isfinite(record["score"]) else None
        print(json.dumps(record))
    else:
        print(result.text)
        print(f"(passage {result.passage_id}, window {result.window}, chars {result.char_start}-{result.char_end}, "
              f"score {result.score:.3f})")
    return 0
