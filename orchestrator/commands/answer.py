"""`decouple answer`: its flags and `run`; the search is `orchestrator.answer`."""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict

from orchestrator.answer import AnswerOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = AnswerOptions
    parser.add_argument("--model", required=True, help="checkpoint the cache was built with (dir, hub name or "
                                                       "'minilm-l6')")
    parser.add_argument("--cache", required=True, help="cache directory (decouple cache build --out)")
    parser.add_argument("--question", required=True, help="the question")
    parser.add_argument("--passage-id", help="search only this passage (default: every cached window)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="windows per upper-layer call")
    parser.add_argument("--max-answer-len", type=int, default=d.max_answer_len, help="longest answer in tokens")
    parser.add_argument("--device", default=d.device, help="torch device, e.g. cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print the answer as one JSON object")


def run(args: argparse.Namespace) -> int:
    from orchestrator.answer import answer, settings_line

    options = AnswerOptions(model=args.model, cache=args.cache, question=args.question, passage_id=args.passage_id,
                            batch_size=args.batch_size, max_answer_len=args.max_answer_len, device=args.device)
    result = answer(options)
    print(f"[answer] {settings_line(options)}", file=sys.stderr, flush=True)
    if args.json:
        record = asdict(result)
        record["score"] = record["score"] if math.isfinite(record["score"]) else None
        print(json.dumps(record))
    else:
        print(result.text)
        print(f"(passage {result.passage_id}, window {result.window}, chars {result.char_start}-{result.char_end}, "
              f"score {result.score:.3f})")
    return 0
