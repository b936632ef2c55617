"""Files a command reads, broken, and numbers that are not numbers, through the real CLI (issue 34, items 6 and 10):
each is one line naming the file (with its line) or the field, and the fix, exit 2, no traceback, before Ray starts
and with nothing written.

1. `--resume-from` a broken checkpoint      2. a broken options file      3. a sweep's own records
4. NaN and infinity as options or budgets
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
                                                                tiny_qa_checkpoint, file, payload, cut, message,
                                                                ray_starts):
    """Before: a truncated model.safetensors was found inside the worker, after about a minute, with a 26-line
    traceback and a line calling the checkpoint "model"."""
    resume = broken_copy(epoch_checkpoint, tmp_path / "epoch_001", file, payload, cut)
    before = tree(tmp_path)
    line = refused("train", "--model", str(tiny_qa_checkpoint), "--resume-from", str(resume),
                   "--output-dir", str(tmp_path / "out"), *TINY_TRAIN)
    assert line.startswith(f"resume_from {resume}: {message}")
    assert ray_starts == []
    assert tree(tmp_path) == before  # nothing written: no output directory, the checkpoint untouched


def test_resume_from_an_intact_checkpoint_passes_the_check(capsys, tmp_path, epoch_checkpoint, tiny_qa_checkpoint,
                                                           no_ray_training):
    code = main(["train", "--model", str(tiny_qa_checkpoint), "--resume-from", str(epoch_checkpoint),
                 "--output-dir", str(tmp_path / "out"), *TINY_TRAIN])
    assert code == 0, capsys.readouterr().err
    assert no_ray_training[0].resume_from == str(epoch_checkpoint)


# ---- 2. a broken options file ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("lr: 1e-4\nepochs: [1\nsplit: 2\n", "not valid YAML at line 3 column 6 (expected ',' or ']', but got ':'); "
                                         "write one 'name: value' per line"),
    ("lr: 1e-4\n  epochs: 2\n", "not valid YAML at line 2 column 9 (mapping values are not allowed here)"),
    ("lr: 1e-4\n\tsplit: 3\n", "not valid YAML at line 2 column 1 (found character '\\t' that cannot start any "
                               "token)"),
    ("# options\nlr: 1e-4\nepochs: two\n", "epochs='two' is not an integer (line 3)"),
    ("lr: 1e-4\nlr_warmup: 3\n", "lr_warmup: unknown option; known options are "),
    ("lr: .nan\n", "lr=nan is not a finite number; pass a number (the default is 5e-05) (line 1)"),
    ("- lr\n", "expected a mapping of option names to values, got list; write one 'name: value' per line"),
])
def test_a_broken_options_file_names_its_line_and_the_fix(refused, tmp_path, text, message):
    config = tmp_path / "options.yaml"
    config.write_text(text)
    assert refused("train", "--config", str(config)).startswith(f"{config}: {message}")


def test_an_options_file_that_is_not_text_is_named(refused, tmp_path):
    config = tmp_path / "options.yaml"
    config.write_bytes(b"\xff\xfelr: 1\n")
    assert refused("train", "--config", str(config)) == f"{config}: not UTF-8 text; save the options file as UTF-8"


# ---- 3. a sweep's own records ---------------------------------------------------------------------------------------
SWEEP_FIX = "sweep.json is written by `decouple sweep`: restore it, or start the sweep again under a new --name"


@pytest.mark.parametrize("text, problem", [
    ('{"sweep": "s",\n "space": }\n', "not valid JSON (Expecting value at line 2 column 11)"),
    ('["s"]', "not a JSON object"),
    ('{"sweep": "s"}', "lacks space, source, smoke, num_samples, max_concurrent, base, teacher, tracking_uri, "
                       "experiment, parent_run_id, metrics, modes, target"),
    (b'\xff{"sweep": "s"}', "not UTF-8 text"),
])
def test_report_and_resume_name_a_broken_sweep_record(refused, tmp_path, text, problem):
    """Before: a broken sweep.json was 'Expecting value: line 2 column 11 (char 25)' naming no file, and a record
    lacking fields a TypeError traceback."""
    sweep = tmp_path / "storage" / "s"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    before = tree(tmp_path)
    assert refused("report", str(sweep)) == f"{sweep}/sweep.json: {problem}; {SWEEP_FIX}"
    assert refused("sweep", "split", "--storage", str(tmp_path / "storage"), "--name", "s", "--resume") == (
        f"{sweep}/sweep.json: {problem}; {SWEEP_FIX}")
    assert tree(tmp_path) == before


def test_a_kept_teacher_with_a_broken_record_is_named(tmp_path):
    """teacher.json is read where the sweep reuses its teacher, after Ray has started, so this one is called
    directly: the line names the file and says how to get the teacher again."""
    from orchestrator.errors import UserError
    from orchestrator.sweep.teacher import ensure_teacher, teacher_options
    from trainables.options import TrainOptions
    from trainables.trial_reuse import teacher_key

    folder = tmp_path / "teachers" / teacher_key(TrainOptions.from_dict(teacher_options({})))
    folder.mkdir(parents=True)
    (folder / "teacher.json").write_text('{"path": "runs/t",\n "accuracy": 50.0}')
    with pytest.raises(UserError) as caught:
        ensure_teacher({}, str(tmp_path), "sqlite:///unused.db", "unused")
    assert str(caught.value) == (f"{folder}/teacher.json: lacks key, metrics; delete {folder} to train the teacher "
                                 "again")
    (folder / "teacher.json").write_text('{"path": "runs/t"')
    with pytest.raises(UserError, match=r"teacher\.json: not valid JSON \(Expecting ',' delimiter at line 1 column "
                                        r"18\); delete .* to train the teacher again$"):
        ensure_teacher({}, str(tmp_path), "sqlite:///unused.db", "unused")


def test_a_given_teacher_with_broken_metrics_is_named_before_ray(refused, tmp_path, tiny_qa_checkpoint, ray_starts):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_qa_checkpoint, teacher)
    (teacher / "metrics.json").write_text('{"eval_f1": 50.0,\n')
    storage = tmp_path / "storage"
    line = refused("sweep", "split", "--storage", str(storage), "--teacher", str(teacher), "--smoke")
    assert line == (f"--teacher {teacher}: {teacher}/metrics.json: not valid JSON (Expecting property name enclosed "
                    "in double quotes at line 2 column 1); pass the checkpoint of a `decouple train` run, or "
                    "--eval-data for the sweep to score the teacher there")
    assert ray_starts == [] and not storage.exists()


# ---- 4. NaN and infinity ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "nan", "lr=nan is not a finite number; pass a number (the default is 5e-05)"),
    ("--lr", "inf", "lr=inf is not a finite number; pass a number (the default is 5e-05)"),
    ("--kd-ratio", "nan", "kd_ratio=nan is not a finite number; pass a number (the default is 0.5)"),
    ("--max-grad-norm", "inf", "max_grad_norm=inf is not a finite number; pass a number (the default is 1)"),
    ("--dropout", "-inf", "dropout=-inf is not a finite number; pass a number"),
])
def test_train_refuses_options_that_are_not_finite(refused, tmp_path, flag, value, message):
    """Before: lr=inf, max_grad_norm=inf and dropout=nan passed every range check (NaN compares false)."""
    assert refused("train", f"{flag}={value}", "--output-dir", str(tmp_path / "out"), *TINY_TRAIN) == message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag, message", [
    ("--max-drop", "max_drop=nan is not a finite number; pass a number (the default is 1)"),
    ("--min-speedup", "min_speedup=nan is not a finite number; pass a number"),
    ("--max-state-bytes-per-token", "max_state_bytes_per_token=nan is not a finite number; pass a number"),
])
def test_report_refuses_a_budget_that_is_not_finite(refused, tmp_path, flag, message):
    """Before: --max-drop nan admitted no trial, and the report said to widen the budget."""
    assert refused("report", str(tmp_path / "any-sweep"), flag, "nan") == message


def test_cache_build_refuses_gpus_that_are_not_finite(refused, tmp_path):
    assert refused("cache", "build", "--model", "minilm-l6", "--data", "synthetic", "--out", str(tmp_path / "cache"),
                   "--gpus-per-worker", "nan") == "gpus_per_worker=nan is not a finite number; pass a number"
    assert list(tmp_path.iterdir()) == []
