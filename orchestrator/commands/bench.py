"""`decouple bench`: its flags and `run`; the measurement is `orchestrator.bench.run_bench` over
`trainables.speed.timing`."""
from __future__ import annotations

import argparse
import json

from orchestrator.bench import DEFAULT_EXPERIMENT, BenchOptions
from orchestrator.errors import UserError
from orchestrator.flags import add_renamed_flag
from trainables.model.config import CACHE_DTYPES
from trainables.speed.flops import SHAPE_PRESETS
from trainables.speed.timing import DEVICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = BenchOptions
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="checkpoint directory, hub name (org/name[@revision]) or 'minilm-l6' to time "
                                        "with its real weights")
    source.add_argument("--shape", choices=list(SHAPE_PRESETS), default=d.shape, help="preset with random weights")
    parser.add_argument("--splits", help="comma-separated splits, e.g. 0,6,9,11 (default: every 3rd layer and L-1)")
    parser.add_argument("--compression-ratio", type=int, default=d.compression_ratio,
                        help="compression ratio r (1 = none)")
    add_renamed_flag(parser, "--ratio", "--compression-ratio", "compression_ratio", type=int)
    parser.add_argument("--cache-dtype", choices=CACHE_DTYPES, default=d.cache_dtype)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--question-len", type=int, default=d.question_len)
    parser.add_argument("--passage-len", type=int, default=d.passage_len)
    parser.add_argument("--device", choices=DEVICES, default=d.device)
    parser.add_argument("--repeats", type=int, default=d.repeats, help="timed rounds of full, live and cached")
    parser.add_argument("--warmup", type=int, default=d.warmup, help="untimed calls per path before timing")
    parser.add_argument("--threads", type=int, default=d.threads, help="torch threads (default: torch's current)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    parser.add_argument("--tracking-uri", help="also log to this MLflow tracking URI")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")


def _parse_splits(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--splits {text!r}: expected comma-separated integers, e.g. 0,6,9,11") from None


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(
        model=args.model, shape=args.shape, splits=_parse_splits(args.splits),
        compression_ratio=args.compression_ratio,
        cache_dtype=args.cache_dtype, batch_size=args.batch_size, question_len=args.question_len,
        passage_len=args.passage_len, device=args.device, repeats=args.repeats, warmup=args.warmup,
        threads=args.threads, seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from orchestrator.bench import format_table, log_to_mlflow, run_bench

    result = run_bench(options_from_args(args))
    print(format_table(result), flush=True)
    if args.tracking_uri:
        print(f"logged to MLflow run {log_to_mlflow(result, args.tracking_uri, args.experiment)}")
    if args.json:
        print(json.dumps(result.to_dict()))
    return 0
