"""Files a command reads, broken, through the real CLI (issue 34): each is one line naming the file and the fix,
exit 2, no traceback, before Ray starts and with nothing written.

1. `--resume-from` a broken checkpoint
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForQuestionAnswering

from orchestrator.cli import main
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel

TINY_TRAIN = ["--max-question-len", "24", "--max-passage-len", "64", "--doc-stride", "16", "--epochs", "2",
              "--max-train-examples", "16", "--max-eval-examples", "8", "--no-tracking", "--no-progress"]


@pytest.fixture(autouse=True)
def one_line_errors(monkeypatch, tmp_path):
    monkeypatch.delenv("DECOUPLE_DEBUG", raising=False)  # the debug switch re-raises with a traceback
    monkeypatch.chdir(tmp_path)  # a command's default folders (runs/) land in the test's folder


@pytest.fixture
def refused(capsys):
    """Run ``decouple ARGS`` in this process; it must exit 2 with one stderr line and no traceback: that line."""
    def call(*argv: str) -> str:
        code = main(list(argv))
        out, err = capsys.readouterr()
        lines = [line for line in err.splitlines() if line.strip()]
        assert "Traceback" not in out + err
        assert code == 2 and len(lines) == 1, err
        assert lines[0].startswith(f"decouple {argv[0]}: error: ")
        return lines[0].removeprefix(f"decouple {argv[0]}: error: ")

    return call


def tree(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time: unchanged when nothing was written."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


# ---- 1. --resume-from a broken checkpoint --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def epoch_checkpoint(tmp_path_factory, tokenizer) -> Path:
    """An epoch checkpoint as a training run writes it: the model (split 0), its tokenizer, trainer_state.json."""
    path = tmp_path_factory.mktemp("run") / "epoch_001"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    model = DecoupledModel(BertForQuestionAnswering(config), DecoupledConfig(split=0))
    model.tokenizer = tokenizer
    model.save_pretrained(path)
    (path / "trainer_state.json").write_text(json.dumps({"epoch": 1, "phase": 2, "global_step": 4}))
    return path


def broken_copy(source: Path, target: Path, file: str, payload: bytes | None = None, cut: int | None = None) -> Path:
    """A copy of ``source`` whose ``file`` is replaced by ``payload``, loses its last ``-cut`` bytes, or (neither)
    is removed."""
    shutil.copytree(source, target)
    if payload is not None:
        (target / file).write_bytes(payload)
    elif cut is not None:
        (target / file).write_bytes((target / file).read_bytes()[:cut])
    else:
        (target / file).unlink()
    return target


@pytest.mark.parametrize("file, payload, cut, message", [
    ("model.safetensors", None, -1000, "model.safetensors is truncated or corrupt (Error while deserializing header"),
    ("model.safetensors", b"", None, "model.safetensors is truncated or corrupt"),
    ("config.json", b'{"model_type": "bert", ', None, "config.json is not valid JSON (Expecting property name"),
    ("trainer_state.json", b'{"epoch": 1', None, "trainer_state.json is not an object of integer epoch, phase, "
                                                 "global_step; resume from an earlier epoch's checkpoint"),
    ("trainer_state.json", b'{"epoch": "one", "phase": 2, "global_step": 4}', None, "trainer_state.json is not an "
                                                                                  "object of integer epoch"),
    ("trainer_state.json", None, None, "no trainer_state.json; pass an epoch checkpoint (epoch_NNN) of a training run"),
])
def test_resume_from_a_broken_checkpoint_is_one_line_before_ray(refused, tmp_path, epoch_checkpoint,
                                                                tiny_qa_checkpoint, file, payload, cut, message):
    """Before: a truncated model.safetensors was found inside the worker, after about a minute, with a 26-line
    traceback and a line calling the checkpoint "model"."""
    ray = pytest.importorskip("ray")
    resume = broken_copy(epoch_checkpoint, tmp_path / "epoch_001", file, payload, cut)
    before = tree(tmp_path)
    line = refused("train", "--model", str(tiny_qa_checkpoint), "--resume-from", str(resume),
                   "--output-dir", str(tmp_path / "out"), *TINY_TRAIN)
    assert line.startswith(f"resume_from {resume}: {message}")
    assert not ray.is_initialized()
    assert tree(tmp_path) == before  # nothing written: no output directory, the checkpoint untouched


def test_resume_from_an_intact_checkpoint_passes_the_check(capsys, tmp_path, epoch_checkpoint, tiny_qa_checkpoint,
                                                           no_ray_training):
    code = main(["train", "--model", str(tiny_qa_checkpoint), "--resume-from", str(epoch_checkpoint),
                 "--output-dir", str(tmp_path / "out"), *TINY_TRAIN])
    assert code == 0, capsys.readouterr().err
    assert no_ray_training[0].resume_from == str(epoch_checkpoint)
