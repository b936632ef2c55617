"""`decouple cache build|verify`: the command line of the passage cache (`orchestrator.cache_build`,
`trainables.cache.format`). Ray and torch are imported only when an action runs."""
from __future__ import annotations

import argparse
import json
import sys

from orchestrator.cli import add_verbose


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="encode passages with Ray Data into sharded Parquet (resumable)")
    add_verbose(build)
    _add_build_arguments(build)
    build.set_defaults(_cache_run=_run_build)
    verify = sub.add_parser("verify", help="check every shard's checksum, rows and schema against the manifest and "
                                           "decode its key columns (--deep: every column)")
    add_verbose(verify)
    verify.add_argument("cache_dir", metavar="DIR", help="cache directory")
    verify.add_argument("--deep", action="store_true",
                        help="also decode the token ids, offsets and states: shapes, dtypes, finite values, zero "
                             "padding (about ten times slower)")
    verify.add_argument("--json", action="store_true", help="print the report as one JSON object")
    verify.set_defaults(_cache_run=_run_verify)


def _add_build_arguments(parser: argparse.ArgumentParser) -> None:
    # Options left out keep CacheBuildOptions' defaults (the one place they live; importing it here would pull
    # Ray and transformers into `decouple --help`).
    keep = argparse.SUPPRESS
    parser.add_argument("--model", required=True, help="checkpoint directory (save_pretrained output), hub name "
                                                       "(org/name[@revision]) or 'minilm-l6'")
    parser.add_argument("--data", required=True,
                        help="SQuAD .json / 'synthetic[:...]' / hub name (its contexts), or a .jsonl/.parquet corpus "
                             "of {id, text} records (passage id = record id)")
    parser.add_argument("--out", required=True, help="cache directory; a rerun with the same arguments resumes it")
    parser.add_argument("--rows-per-shard", type=int, default=keep, help="windows per Parquet shard")
    parser.add_argument("--batch-size", type=int, default=keep, help="windows per encode_passage call")
    parser.add_argument("--workers", type=int, default=keep, help="actors in the Ray Data pool")
    parser.add_argument("--gpus-per-worker", type=float, default=keep,
                        help="GPUs per actor (default: 1 when the cluster has GPUs, else 0)")
    parser.add_argument("--cpus-per-worker", type=int, default=keep,
                        help="CPUs (and torch threads) per actor (default: the cluster's CPUs / workers)")
    parser.add_argument("--max-passage-len", type=int, default=keep,
                        help="tokens per window; must match evaluation (default: the model's training setting, else "
                             "the training default)")
    parser.add_argument("--doc-stride", type=int, default=keep,
                        help="overlap between windows in tokens; must match evaluation (default: the model's training "
                             "setting, else the training default)")
    parser.add_argument("--split", type=int, default=keep, help="override the checkpoint's split")
    parser.add_argument("--compression-ratio", type=int, default=keep, help="override the checkpoint's ratio")
    parser.add_argument("--cache-dtype", choices=("fp32", "fp16", "int8"), default=keep,
                        help="override the checkpoint's cache dtype")
    parser.add_argument("--ray-address", default=keep, help="Ray cluster to use (default: start a local one)")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object, and nothing else on stdout")


_BUILD_FIELDS = ("model", "data", "out", "rows_per_shard", "batch_size", "workers", "gpus_per_worker",
                 "cpus_per_worker", "max_passage_len", "doc_stride", "split", "compression_ratio", "cache_dtype",
                 "ray_address")


def run(args: argparse.Namespace) -> int:
    return args._cache_run(args)


def _run_build(args: argparse.Namespace) -> int:
    from orchestrator.cache_build import CacheBuildOptions, build_cache

    options, line = CacheBuildOptions(**{k: getattr(args, k) for k in _BUILD_FIELDS if hasattr(args, k)}).settled()
    if line:
        print(f"[cache build] {line}", file=sys.stderr, flush=True)
    wrote = None if args.json else lambda entry: print(f"wrote {entry.file} ({entry.rows} windows)", flush=True)
    summary = build_cache(options, progress=wrote, show_progress=not args.json)
    record = summary.to_dict()
    if args.json:
        print(json.dumps(record))
        return 0
    print(f"{record['data']}")
    print(f"cache {summary.out}: {summary.windows} windows of {summary.passages} passages in {summary.shards} shards "
          f"({summary.shards_written} written, {summary.shards_kept} kept); "
          f"{summary.windows_per_second:.1f} windows/s")
    print(f"bytes per passage token: {summary.state_bytes_per_token:,.1f} of cached states (state_bytes_per_token, as "
          f"`decouple sweep` and `bench` report it), {summary.disk_bytes_per_token:,.1f} on disk (disk_bytes_per_token:"
          " every window position's states, token ids, offsets, text)")
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    from trainables.cache.format import verify_cache

    report = verify_cache(args.cache_dir, deep=args.deep)
    if args.json:
        print(json.dumps({"ok": report.ok, "deep": report.deep, "shards": report.shards, "rows": report.rows,
                          "bytes": report.bytes, "valid_tokens": report.valid_tokens,
                          "disk_bytes_per_token": report.disk_bytes_per_token, "problems": report.problems}))
    else:
        for line in report.problems:
            print(line)
        print(report.summary())
    return 0 if report.ok else 1
