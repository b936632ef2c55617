"""The README's path from a pre-trained model to answers, run as the README writes it: its Training, Evaluation and
Passage cache commands, read from README.md itself, through the real CLI in a fresh working directory (so their
relative ``runs/...`` paths are the README's). Only the size changes: a tiny random BERT with MiniLM's tokenizer as
the pre-trained model, a synthetic data set for the SQuAD file, and one short epoch (`TINY_TRAIN`)."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import torch
from transformers import BertForQuestionAnswering

from orchestrator.cli import main
from tests.conftest import tiny_bert_config

README = Path(__file__).parents[1] / "README.md"
SECTIONS = ("Training", "Evaluation", "Passage cache")
README_DATA = "../shared/data/squad-v1.1-dev-part-a.json"
DATA = "synthetic:seed=0,articles=8"
"""Eight articles: the teacher command holds six out (--eval-articles 6) and trains on two."""
TINY_TRAIN = ["--epochs", "1", "--max-question-len", "24", "--max-passage-len", "64", "--doc-stride", "16",
              "--batch-size", "16", "--eval-batch-size", "64"]


def readme_commands() -> list[list[str]]:
    """The `decouple` commands of the README's Training, Evaluation and Passage cache sections that work on the
    model the path trains (they name ``runs/``), in README order, comments dropped."""
    commands = []
    for title in SECTIONS:
        section = re.search(rf"^### {re.escape(title)}\b.*?(?=^##)", README.read_text(), re.M | re.S)
        assert section, f"README.md has no section '### {title}'"
        for block in re.findall(r"```bash\n(.*?)```", section.group(0), re.S):
            commands += [shlex.split(line, comments=True) for line in block.splitlines()
                         if line.startswith("decouple ") and "runs/" in line]
    return commands


def tiny(command: list[str], model: Path) -> list[str]:
    """A README command at test size: the synthetic set for the SQuAD file; training from the tiny model, briefly."""
    args = [DATA if arg == README_DATA else arg for arg in command[1:]]
    if args[0] != "train":
        return args
    return args + TINY_TRAIN + (["--model", str(model)] if "teacher" in args[args.index("--mode") + 1] else [])


@pytest.fixture
def pretrained(tmp_path, tokenizer) -> Path:
    """A 4-layer random BERT (so the README's --split 3 exists) saved like a hub checkpoint, tokenizer beside it."""
    torch.manual_seed(0)
    path = tmp_path / "pretrained"
    BertForQuestionAnswering(tiny_bert_config(layers=4)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_readme_commands_run_as_written(local_ray, pretrained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    commands = readme_commands()
    assert [c[1] for c in commands] == ["train", "train", "eval", "cache", "cache", "eval", "answer"], commands
    outputs = []
    for command in commands:
        args = tiny(command, pretrained)
        assert main(args) == 0, (args, capsys.readouterr())
        outputs.append(capsys.readouterr())
    teacher, student, live, build, verify, cached, answer = outputs

    assert "model:  " + str(tmp_path / "runs" / "teacher") in teacher.out
    # A lone training worker holds all the CPUs of this one-machine Ray (2), so torch trains on 2 threads.
    assert json.loads((tmp_path / "runs" / "teacher" / "metrics.json").read_text())["torch_threads"] == 2
    assert "next:   decouple train --mode student --teacher " in teacher.out
    config = json.loads((tmp_path / "runs" / "student-k3" / "config.json").read_text())
    assert config["decoupled"]["split"] == 3 and "next:   decouple eval --model " in student.out
    assert (tmp_path / "runs" / "mlflow.db").is_file()  # one store for every command

    live_scores = json.loads(live.out.strip().splitlines()[-1])
    assert live_scores["examples"] == 8 * 4 * 6 and live_scores["split"] == 3  # articles x paragraphs x questions
    assert "no trained qa head" not in live.err  # the student's head was trained and saved
    assert "windows" in build.out and " ok: " in verify.out
    cached_scores = json.loads(cached.out.strip().splitlines()[-1])
    assert cached_scores["f1"] == pytest.approx(live_scores["f1"], abs=1e-6)  # fp32 states: cached == live
    text, where = answer.out.strip().splitlines()
    assert text and where.startswith("(passage ")
