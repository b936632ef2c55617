"""`decouple cache build|verify`: the command line of the passage cache (`orchestrator.cache_build`,
`trainables.cache.verify`); build's flags are made from `CacheBuildOptions`. Ray and torch are imported only when an
action runs."""
from __future__ import annotations

import argparse
import json
import sys

from orchestrator.cache_options import CacheBuildOptions
from orchestrator.cli import add_verbose
from orchestrator.flags import add_option_flags, given_options


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
    add_option_flags(parser, CacheBuildOptions)
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object, and nothing else on stdout")


def run(args: argparse.Namespace) -> int:
    return args._cache_run(args)


def kept(args: argparse.Namespace) -> str:
    """What an interrupted `cache build` kept (the shards it finished) and how to finish it."""
    import shlex

    if args._cache_run is not _run_build:
        return "nothing was written; run the command again"
    return (f"the shards it finished are kept in {args.out}; finish the cache with the same command: "
            f"decouple {shlex.join(args._argv)}")


def _run_build(args: argparse.Namespace) -> int:
    from orchestrator.cache_build import build_cache

    options, line = CacheBuildOptions(**given_options(args, CacheBuildOptions)).settled()
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
    from trainables.cache.verify import verify_cache

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
