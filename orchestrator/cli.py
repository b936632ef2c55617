"""`decouple` — the command line. Each subcommand lives in its own module of `orchestrator.commands` exposing

    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int

and is imported only when it is dispatched: `decouple --help` lists the commands from `SUBCOMMANDS` alone and loads
no torch, transformers, Ray or MLflow (tests/test_cli_imports.py).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Sequence

from orchestrator.console import console
from orchestrator.disk_full import disk_full
from orchestrator.errors import UserError
from orchestrator.interrupt import as_interrupted, stop_on_signals

# name -> (module, one-line help). Order is the order shown in --help.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("orchestrator.commands.eval", "evaluate a model (full or decoupled at a split) on QA or pair data"),
    "bench": ("orchestrator.commands.bench", "time full vs decoupled (live and cached) models against the FLOPs bound"),
    "train": ("orchestrator.commands.train", "fine-tune a teacher or distil a decoupled student on Ray Train"),
    "augment": ("orchestrator.commands.augment", "pair tasks: new training pairs (copies with words substituted, or "
                "nearest-neighbour sentences), labelled by the teacher"),
    "cache": ("orchestrator.commands.cache", "build / verify a sharded Parquet passage cache with Ray Data"),
    "answer": ("orchestrator.commands.answer", "answer a question from a passage cache"),
    "serve": ("orchestrator.commands.serve", "serve answers over HTTP from a passage cache (Ray Serve, BM25 retrieval, "
              "batching)"),
    "loadtest": ("orchestrator.commands.loadtest", "send a bounded load of questions to a served model: QPS, latency "
                 "percentiles, errors"),
    "sweep": ("orchestrator.commands.sweep", "run a Ray Tune + Optuna sweep defined in search_spaces/"),
    "report": ("orchestrator.commands.report", "print a sweep's Pareto table and recommend a configuration"),
}

DEBUG_ENV = "DECOUPLE_DEBUG"
"""Set (to anything) to get the full traceback instead of the one-line error."""
VERBOSE_HELP = ("show every library log: Ray's, Ray Train/Tune/Data's, transformers' weight reports and progress "
                "bars, MLflow's (also DECOUPLE_VERBOSE=1)")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `decouple` parser. With ``argv``, only the command it names is imported and given its flags (the others
    are listed by name and help text); without, every command is."""
    parser = argparse.ArgumentParser(
        prog="decouple",
        description="Decoupled (DeFormer-style) transformers: evaluate, benchmark, train, cache and sweep.",
    )
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # The top level's only flags take no value, so the first other word is the command.
    wanted = set(SUBCOMMANDS) if argv is None else {next((a for a in argv if not a.startswith("-")), None)}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if importlib.util.find_spec(module_name) is None:
            continue  # subcommand not shipped in this build
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name in wanted:
            module = importlib.import_module(module_name)
            add_verbose(p)
            module.add_arguments(p)
            p.set_defaults(_run=module.run, _kept=getattr(module, "kept", None))
    return parser


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` after a (sub)command name as well as before it (`decouple --verbose train`)."""
    parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 0
    args._argv, args._started = argv, time.time()
    try:
        # The libraries' logs turned down unless --verbose (orchestrator.console); SIGTERM stops as Ctrl-C does.
        with console(args.verbose), stop_on_signals():
            return int(args._run(args) or 0)
    except (UserError, ValueError, FileNotFoundError) as err:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"decouple {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # a disk that filled mid-run is one line; anything else stays a bug's traceback

        full = disk_full(err)
        if full is None or os.environ.get(DEBUG_ENV):
            raise
        kept = args._kept(args) if args._kept else "nothing was kept; run the command again"
        print(f"decouple {args.command}: error: {full} (free some space first); {kept}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # SIGINT, or SIGTERM once Ray runs (orchestrator.interrupt)
        stop = as_interrupted(err)
        kept = args._kept(args) if args._kept else "nothing was kept; run the command again"
        print(f"decouple {args.command}: interrupted ({stop}); {kept}", file=sys.stderr)
        return stop.exit_code


def one_line(err: BaseException) -> str:
    """The error as one line: for an exception a Ray task raised, the task's own exception (Ray's wrapper keeps it
    as ``cause``; its own text is the remote traceback), else the message's first line."""
    while isinstance(getattr(err, "cause", None), BaseException):
        err = err.cause
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
