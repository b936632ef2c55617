"""`decouple eval`: its flags and `run`; the evaluation is `orchestrator.evaluate`."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from orchestrator.evaluate import EvalOptions
from orchestrator.flags import add_renamed_flag
from trainables.data.features import DOC_STRIDE, MAX_PASSAGE_LEN


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = EvalOptions()
    parser.add_argument("--model", default=d.model, help="checkpoint dir, hub name, or 'minilm-l6' (default)")
    parser.add_argument("--data", default=d.data, help="SQuAD JSON, pair TSV/JSONL, hub name, or 'synthetic' (default)")
    parser.add_argument("--split", type=int, help="decouple at this split (default: as saved)")
    parser.add_argument("--compression-ratio", type=int, help="compression ratio (default: as saved)")
    add_renamed_flag(parser, "--ratio", "--compression-ratio", "compression_ratio", type=int)
    parser.add_argument("--cache-dtype", choices=("fp32", "fp16", "int8"), help="cache dtype (default: as saved)")
    parser.add_argument("--task", choices=("qa", "pair"), help="default: the model's training task, else from the "
                                                                  "data")
    parser.add_argument("--data-split", default=d.data_split, help="hub dataset split")
    parser.add_argument("--max-passage-len", type=int, help="passage tokens per window or pair (default: the "
                        f"cache's, else the model's training setting, else {MAX_PASSAGE_LEN})")
    parser.add_argument("--doc-stride", type=int, help="QA: overlap between windows (default: as --max-passage-len, "
                                                       f"else {DOC_STRIDE})")
    parser.add_argument("--limit", type=int, help="only the first N examples")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--version-2", action="store_true", help="SQuAD 2.0 scoring")
    parser.add_argument("--cache", help="read passage states from this cache directory")
    parser.add_argument("--device", default=d.device, help="cpu (default), cuda or cuda:N")
    parser.add_argument("--labels", help="pair data: its labels as written, comma-separated in class order "
                                         "(default: the model's training --labels, else declared by the data, else "
                                         "0,1 or the GLUE sets)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object as the last line (and no progress line on a terminal)")


def run(args: argparse.Namespace) -> int:
    from orchestrator.evaluate import evaluate, settle, untrained_head_note

    names = {f.name for f in fields(EvalOptions)}
    options, lines = settle(EvalOptions(**{k: v for k, v in vars(args).items() if k in names}))
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

