"""Long steps show their progress on a terminal (count, rate, time left) and nothing elsewhere or with --json."""
from __future__ import annotations

import io
import json
import sys

from orchestrator.cli import main
from orchestrator.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_draws_rate_and_time_left_then_the_total():
    stream, clock = Terminal(), Clock()
    with Progress("eval", 1000, "rows", stream=stream, clock=clock) as progress:
        clock.now += 2.0
        progress.advance(400)  # 200 rows/s: 600 rows left take 3 s
        clock.now += 0.1
        progress.advance(100)  # within the refresh interval: not drawn
        clock.now += 2.9
        progress.advance(500)
    lines = stream.getvalue().split("\r")[1:]
    assert lines[0].rstrip() == "eval: 400/1,000 rows, 200 rows/s, 3 s left"
    assert lines[-1] == "eval: 1,000/1,000 rows, 200 rows/s, in 5 s\n"
    assert len(lines) == 2


def test_progress_is_silent_off_a_terminal_or_when_disabled():
    for stream, enabled in ((io.StringIO(), True), (Terminal(), False)):
        with Progress("eval", 10, "rows", stream=stream, enabled=enabled, clock=Clock()) as progress:
            progress.advance(10)
        assert stream.getvalue() == ""


def test_eval_shows_progress_on_a_terminal_and_none_with_json(tiny_qa_checkpoint, capsys, monkeypatch):
    args = ["eval", "--model", str(tiny_qa_checkpoint), "--data", "synthetic:articles=1", "--limit", "6"]
    monkeypatch.setattr("sys.stderr", Terminal())
    assert main(args) == 0
    assert "eval: 6/6 rows, " in sys.stderr.getvalue() and ", in " in sys.stderr.getvalue()
    monkeypatch.setattr("sys.stderr", Terminal())
    assert main([*args, "--json"]) == 0
    assert sys.stderr.getvalue() == ""
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["examples"] == 6


def test_cache_build_counts_each_windowed_passage(tokenizer):
    from trainables.cache.plan import Passage, plan_windows

    counted = []
    passages = [Passage("a", "Ada wrote the first program. " * 8), Passage("b", "Grace wrote a compiler.")]
    plan = plan_windows(passages, tokenizer, max_passage_len=16, doc_stride=4, progress=counted.append)
    assert counted == [1, 1] and len(plan) > len(passages)  # the long passage takes several windows


def test_training_progress_lines_say_the_time_left(capsys):
    import torch

    from trainables.training.loop import _Progress

    progress = _Progress("epoch 1/1 (phase 2)", 4, enabled=True)
    for _ in range(4):
        progress.step(torch.tensor(1.5))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and " s left, loss 1.5000" in lines[0] and "s left" not in lines[-1]


def test_train_json_turns_progress_off_unless_asked(tiny_qa_checkpoint):
    from orchestrator.cli import build_parser
    from orchestrator.commands.train import options_from_args, quiet_for_json

    def progress(*flags: str) -> bool:
        args = build_parser().parse_args(["train", "--model", str(tiny_qa_checkpoint), *flags])
        return quiet_for_json(options_from_args(args), args).progress

    assert (progress(), progress("--json"), progress("--json", "--progress")) == (True, False, True)
