"""`decouple augment`: its flags and `run`; the work is `orchestrator.augment`."""
from __future__ import annotations

import argparse

from orchestrator.augment import AugmentOptions, augment
from orchestrator.flags import add_option_flags, given_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_flags(parser, AugmentOptions)


def kept(args: argparse.Namespace) -> str:
    """What an interrupted `decouple augment` kept: nothing (its output is written whole, at the end)."""
    import shlex

    return (f"nothing was written to {args.output} (it is written whole, at the end); run the command again: "
            f"decouple {shlex.join(args._argv)}")


def run(args: argparse.Namespace) -> int:
    result = augment(AugmentOptions(**given_options(args, AugmentOptions)))
    classes = ", ".join(f"{name}: {count}" for name, count in result.added_per_class.items())
    print(f"[augment] {result.output}: the data's {result.kept} pairs, then {result.added} new ones labelled by the "
          f"teacher ({classes}) in {result.seconds:.0f} s")
    print(f"next:   decouple train --mode student --task pair --data {result.output} --teacher <the teacher> "
          "--eval-data <held-out pairs>")
    return 0
