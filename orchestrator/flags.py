"""Command-line flags made from the options dataclasses: one flag per field, ``--field-name``, its help the field's
docstring; and old flag names still accepted with a one-line deprecation notice. Every command that takes a setting
spells it as the dataclass field (`--compression-ratio` in `train`, `eval`, `bench` and `cache build`)."""
from __future__ import annotations

import argparse
import ast
import inspect
import sys
from dataclasses import MISSING, fields


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each dataclass field, whitespace collapsed to one line (``%`` escaped for argparse)."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(following, ast.Expr):
            value = getattr(following, "value", None)
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docs[node.target.id] = " ".join(value.value.split()).replace("%", "%%")
    return docs


def add_option_flags(group, cls: type) -> None:
    """``--field-name`` for every field of the dataclass ``cls``, each defaulting to None (= not given, so a value from
    a file or the dataclass's default stands); booleans also get ``--no-field-name``."""
    helps = field_docs(cls)
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = "" if f.default is MISSING else f" (default: {f.default})"
        text = f"{helps.get(f.name, '')}{default}"
        if f.type in ("bool", bool):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=text)


class _Renamed(argparse.Action):
    """Stores the value under the new name's destination after one deprecation line on stderr."""

    def __init__(self, option_strings, dest, new_flag: str = "", **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"decouple: {option_string} is deprecated; use {self.new_flag}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed_flag(parser, old_flag: str, new_flag: str, dest: str, **kwargs) -> None:
    """Accept ``old_flag`` as ``new_flag`` (same ``dest``, same type), hidden from --help, with a deprecation line."""
    parser.add_argument(old_flag, dest=dest, action=_Renamed, new_flag=new_flag, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS, **kwargs)
