"""`decouple serve`: its flags and `run`; the service is `orchestrator.serve`."""
from __future__ import annotations

import argparse
import sys

from orchestrator.flags import add_option_flags, given_options
from orchestrator.serve import serve
from trainables.serving.options import ServeOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_flags(parser, ServeOptions)


def run(args: argparse.Namespace) -> int:
    serve(ServeOptions(**given_options(args, ServeOptions)), say=_say)
    return 0


def kept(args: argparse.Namespace) -> str:
    """What a stopped service leaves: nothing; Serve and the command's Ray are shut down."""
    return "the service stopped, Ray Serve and the command's Ray are shut down; nothing to keep"


def _say(line: str) -> None:
    print(f"[serve] {line}", file=sys.stderr, flush=True)
