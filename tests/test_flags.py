"""Every command's setting flags are made from its options dataclass (`orchestrator.flags`): one flag per field, its
help the field's docstring, its type and choices from the field, and only the flags given reach the options."""
from __future__ import annotations

from dataclasses import fields

import pytest

from orchestrator.answer import AnswerOptions
from orchestrator.bench import BenchOptions
from orchestrator.cache_options import CacheBuildOptions
from orchestrator.cli import build_parser
from orchestrator.evaluate import EvalOptions
from orchestrator.flags import field_docs, given_options
from orchestrator.loadtest import LoadtestOptions
from orchestrator.sweep.options import SweepOptions
from trainables.options import TrainOptions
from trainables.serving.options import ServeOptions

COMMANDS = [(["eval"], EvalOptions, ()), (["bench"], BenchOptions, ()), (["answer"], AnswerOptions, ()),
            (["cache", "build"], CacheBuildOptions, ()), (["sweep"], SweepOptions, ("bench",)),
            (["train"], TrainOptions, ()), (["serve"], ServeOptions, ()), (["loadtest"], LoadtestOptions, ())]


def _subparser(words: list[str]):
    parser = build_parser(words)
    for word in words:
        action = next(a for a in parser._actions if a.dest in ("command", "cache_command"))
        parser = action.choices[word]
    return parser


@pytest.mark.parametrize("words, cls, left_out", COMMANDS, ids=lambda v: v[0] if isinstance(v, list) else "")
def test_every_field_is_a_flag_with_its_docstring_as_help(words, cls, left_out):
    actions = {a.dest: a for a in _subparser(words)._actions}
    docs = field_docs(cls)
    for f in fields(cls):
        if f.name in left_out:
            assert f.name not in actions
            continue
        assert actions[f.name].help.startswith(docs[f.name]), f.name
        assert actions[f.name].default is None  # not given: the dataclass's default stands


def test_types_and_choices_come_from_the_field(capsys):
    args = build_parser(["bench"]).parse_args(["bench", "--batch-size", "4", "--cache-dtype", "int8"])
    assert args.batch_size == 4 and args.cache_dtype == "int8"
    assert given_options(args, BenchOptions) == {"batch_size": 4, "cache_dtype": "int8"}
    with pytest.raises(SystemExit):
        build_parser(["bench"]).parse_args(["bench", "--cache-dtype", "int4"])
    assert "invalid choice: 'int4'" in capsys.readouterr().err


def test_a_field_without_default_is_required_and_positional_when_marked(capsys):
    with pytest.raises(SystemExit):
        build_parser(["answer"]).parse_args(["answer", "--model", "m", "--cache", "c"])
    assert "the following arguments are required: --question" in capsys.readouterr().err
    args = build_parser(["sweep"]).parse_args(["sweep", "split", "--smoke"])
    assert given_options(args, SweepOptions) == {"space": "split", "smoke": True}
