"""Command-line flags made from the options dataclasses: one flag per field, ``--field-name``, its help the field's
docstring. Every command that takes a setting spells it as the dataclass field (`--compression-ratio` in `train`, `eval`, `bench` and `cache build`).

What a flag is comes from its field: the annotation gives its type (``int``, ``float``, ``str``; ``bool`` is
``--name`` / ``--no-name``; anything else is taken as a string the command converts), a field without a default is a
required flag, and the field's metadata may add ``choices`` (a tuple) or ``positional`` (True). Every flag defaults
to None, meaning not given: `given_options` hands the command only the fields given, so the dataclass's default is
the one default."""
from __future__ import annotations

import argparse
import ast
import inspect
import types
import typing
from collections.abc import Collection
from dataclasses import MISSING, Field, fields

SCALARS = (int, float, str)


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


def add_option_flags(parser, cls: type, *, typed: bool = True, only: Collection[str] | None = None,
                     exclude: Collection[str] = ()) -> None:
    """A flag for every field of the dataclass ``cls`` (or the fields in ``only``, less those in ``exclude``), each
    defaulting to None (= not given, so a value from a file or the dataclass's default stands). ``typed=False``
    leaves every value but a boolean a string, for a class that converts strings itself (`TrainOptions.from_dict`,
    one error text for YAML and flags)."""
    helps = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if (only is not None and f.name not in only) or f.name in exclude:
            continue
        kind = _scalar(hints[f.name])
        text = helps.get(f.name, "") + ("" if f.default is MISSING else f" (default: {f.default})")
        if f.metadata.get("positional"):
            parser.add_argument(f.name, type=kind if typed else None, help=text)
        elif kind is bool:
            parser.add_argument(_flag(f), dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            choices = f.metadata.get("choices") if typed else None
            parser.add_argument(_flag(f), dest=f.name, default=None, metavar=None if choices else f.name.upper(),
                                type=kind if typed else None, choices=choices, required=_required(f), help=text)


def given_options(args: argparse.Namespace, cls: type) -> dict[str, object]:
    """The fields of ``cls`` given on the command line (flags left out are None and leave the default standing)."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}


def _flag(f: Field) -> str:
    return "--" + f.name.replace("_", "-")


def _required(f: Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _scalar(hint: object) -> type | None:
    """``int`` for ``int`` or ``int | None`` (likewise float, str, bool); None for any other annotation."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        hint = rest[0] if len(rest) == 1 else None
    return hint if hint in (*SCALARS, bool) else None

