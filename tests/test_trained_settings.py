"""The data settings travel with the checkpoint: what the training loop writes (training_config.json, config.json's
decoupled section and id2label) is what `eval`, `cache build` and `answer` use when the command line does not say,
each saying so in one stderr line; a flag given wins. And options that mean nothing for a task are neither required
nor checked for it (doc_stride for pairs)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from orchestrator.cli import main
from orchestrator.model_settings import read_trained_settings
from orchestrator.train import loop_config
from trainables.options import TrainOptions
from trainables.training.config import TRAINING_CONFIG

QA = "synthetic:articles=1"
QA_WINDOWS = dict(max_question_len=16, max_passage_len=48, doc_stride=16)


@pytest.fixture(autouse=True)
def one_line_errors(monkeypatch):
    monkeypatch.delenv("DECOUPLE_DEBUG", raising=False)


def yes_no_jsonl(path: Path, rows: int = 12) -> str:
    lines = [json.dumps({"sentence1": f"The cat {i} sleeps.", "sentence2": "A cat rests.",
                         "label": "yes" if i % 2 else "no"}) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def zero_one_tsv(path: Path, rows: int = 8) -> str:
    lines = ["index\tsentence1\tsentence2\tlabel"] + [f"{i}\tThe cat {i} sleeps.\tA cat rests.\t{i % 2}"
                                                      for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _train(options: TrainOptions, target: Path) -> Path:
    """One epoch of the real training loop in this process; the checkpoint it reports, copied to ``target``."""
    from trainables.training.loop import Worker

    def keep(metrics: dict, folder: str | None) -> None:
        shutil.copytree(folder, target, dirs_exist_ok=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Worker(loop_config(options), 0, 1, torch.device("cpu")).run(None, keep)
    finally:
        torch.set_num_threads(threads)
    return target


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_qa_checkpoint) -> dict[str, Path]:
    """A pair model trained on yes/no data (--labels no,yes, P 24, the QA default doc_stride left as it is) and a QA
    model trained with P 48, stride 16 — both by the training loop itself."""
    root = tmp_path_factory.mktemp("trained")
    common = dict(mode="teacher", model=str(tiny_qa_checkpoint), epochs=1, batch_size=4, progress=False)
    pair = TrainOptions(task="pair", data=yes_no_jsonl(root / "yn.jsonl"), labels="no,yes", max_question_len=16,
                        max_passage_len=24, **common)
    qa = TrainOptions(task="qa", data="synthetic:articles=2", eval_articles=1, max_train_examples=8,
                      max_eval_examples=4, **QA_WINDOWS, **common)
    return {"pair": _train(pair, root / "pair"), "qa": _train(qa, root / "qa"), "yn": root / "yn.jsonl"}


def cli(capsys, *argv: str) -> tuple[int, str, list[str]]:
    """Exit code, stdout and the non-empty stderr lines of ``decouple ARGV``."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, [line for line in err.splitlines() if line.strip()]


def said(lines: list[str], command: str) -> list[str]:
    return [line for line in lines if line.startswith(f"[{command}] ")]


# ---- what a checkpoint records ----------------------------------------------------------------------------------------
def test_checkpoints_record_the_data_settings_they_were_trained_with(trained):
    config = json.loads((trained["pair"] / "config.json").read_text())
    assert config["id2label"] == {"0": "no", "1": "yes"} and config["decoupled"]["task"] == "pair"
    pair = read_trained_settings(trained["pair"])
    assert pair.recorded == {"task": ("pair", TRAINING_CONFIG), "max_question_len": (16, TRAINING_CONFIG),
                             "max_passage_len": (24, TRAINING_CONFIG), "labels": ("no,yes", TRAINING_CONFIG)}
    assert pair.class_names == ("no", "yes")
    qa = read_trained_settings(trained["qa"])
    assert {k: v for k, (v, _) in qa.recorded.items()} == {"task": "qa", **QA_WINDOWS}
    assert qa.class_names is None  # a QA head's generic LABEL_0/LABEL_1 name nothing


# ---- eval -------------------------------------------------------------------------------------------------------------
def test_eval_uses_the_training_settings_and_says_so(trained, capsys):
    code, out, err = cli(capsys, "eval", "--model", str(trained["pair"]), "--data", str(trained["yn"]), "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["examples"] == 12
    assert said(err, "eval") == ["[eval] using the model's training settings: task pair, max_passage_len 24, labels "
                                 "no,yes (from training_config.json)"]
    code, out, err = cli(capsys, "eval", "--model", str(trained["qa"]), "--data", QA, "--limit", "4", "--json")
    assert code == 0
    assert said(err, "eval") == ["[eval] using the model's training settings: task qa, max_passage_len 48, doc_stride "
                                 "16 (from training_config.json)"]
    implicit = json.loads(out.splitlines()[-1])
    code, out, _ = cli(capsys, "eval", "--model", str(trained["qa"]), "--data", QA, "--limit", "4", "--json",
                       "--max-passage-len", "48", "--doc-stride", "16")
    assert implicit["rows"] == json.loads(out.splitlines()[-1])["rows"]  # the same windows as given by hand


def test_a_flag_on_the_command_line_wins(trained, capsys):
    args = ["eval", "--model", str(trained["qa"]), "--data", QA, "--limit", "4", "--json"]
    code, out, err = cli(capsys, *args, "--max-passage-len", "96")
    assert code == 0
    assert said(err, "eval") == ["[eval] using the model's training settings: task qa, doc_stride 16 (from "
                                 "training_config.json)"]
    code, wide, _ = cli(capsys, *args, "--max-passage-len", "96", "--doc-stride", "16")
    code, narrow, _ = cli(capsys, *args)
    assert json.loads(out.splitlines()[-1])["rows"] == json.loads(wide.splitlines()[-1])["rows"]
    assert json.loads(wide.splitlines()[-1])["rows"] < json.loads(narrow.splitlines()[-1])["rows"]
    code, _, err = cli(capsys, *args, "--task", "qa", "--max-passage-len", "48", "--doc-stride", "16")
    assert code == 0 and said(err, "eval") == []


def test_eval_refuses_data_of_another_task_than_the_models(trained, capsys, tmp_path):
    data = zero_one_tsv(tmp_path / "pairs.tsv")
    code, _, err = cli(capsys, "eval", "--model", str(trained["qa"]), "--data", data)
    assert code == 2 and err == [
        f"decouple eval: error: data {data}: pair data, but model {trained['qa']} was trained for qa "
        "(training_config.json); evaluate it on qa data, or pass --task pair to give it an untrained pair head"]


def test_pair_data_is_checked_against_the_classes_the_model_names(trained, capsys, tmp_path):
    model = tmp_path / "pair-without-labels-option"
    shutil.copytree(trained["pair"], model)
    record = json.loads((model / TRAINING_CONFIG).read_text())
    (model / TRAINING_CONFIG).write_text(json.dumps({**record, "labels": None}))  # the data declared its labels
    data = zero_one_tsv(tmp_path / "pairs.tsv")
    code, _, err = cli(capsys, "eval", "--model", str(model), "--data", data)
    assert code == 2 and err[-1] == (
        f"decouple eval: error: data {data}: classes 0, 1, but model {model} was trained on no, yes (id2label in its "
        "config.json); pass --labels with the data's labels in the model's class order")
    code, _, _ = cli(capsys, "eval", "--model", str(model), "--data", data, "--labels", "0,1")
    assert code == 0  # told: the data's 0, 1 are the model's classes 0, 1


# ---- cache build, eval --cache, answer --------------------------------------------------------------------------------
def test_cache_build_eval_and_answer_use_the_models_windows(local_ray, trained, capsys, tmp_path):
    from trainables.cache.format import read_manifest

    model, cache = str(trained["qa"]), tmp_path / "cache"
    code, _, err = cli(capsys, "cache", "build", "--model", model, "--data", QA, "--out", str(cache))
    assert code == 0, err
    assert said(err, "cache build") == ["[cache build] using the model's training settings: max_passage_len 48, "
                                        "doc_stride 16 (from training_config.json)"]
    manifest = read_manifest(cache)
    assert (manifest.max_passage_len, manifest.doc_stride) == (48, 16)
    code, _, err = cli(capsys, "eval", "--model", model, "--data", QA, "--cache", str(cache), "--limit", "4")
    assert code == 0 and said(err, "eval") == [
        f"[eval] using the cache's settings: max_passage_len 48, doc_stride 16 (from {cache / 'manifest.json'})",
        "[eval] using the model's training settings: task qa (from training_config.json)"]
    code, _, err = cli(capsys, "eval", "--model", model, "--data", QA, "--cache", str(cache), "--max-passage-len", "64")
    assert code == 2 and err[-1] == (
        f"decouple eval: error: max_passage_len=64 but the cache {cache} holds windows of max_passage_len 48, "
        "doc_stride 16; drop --max-passage-len or build a cache with it")
    code, _, err = cli(capsys, "answer", "--model", model, "--cache", str(cache), "--question", "Who plays the harp?")
    assert code == 0 and said(err, "answer") == [
        "[answer] using the model's training settings: max_question_len 16 (from training_config.json); the cache's "
        f"windows: max_passage_len 48, doc_stride 16 (from {cache}/manifest.json)"]


# ---- options of the other task ------------------------------------------------------------------------------------
def test_options_of_the_other_task_are_neither_required_nor_checked(capsys, tmp_path, tiny_qa_checkpoint,
                                                                  no_ray_training):
    pair = TrainOptions(task="pair", max_passage_len=64)  # doc_stride keeps its QA default, 128
    assert pair.doc_stride == 128
    TrainOptions(task="pair", max_passage_len=64, doc_stride=-1, eval_articles=-1)
    TrainOptions(task="qa", eval_fraction=0.0)
    with pytest.raises(ValueError, match=r"^doc_stride=128 is the overlap"):
        TrainOptions(task="qa", max_passage_len=64)  # for QA it means something, so it is checked
    data = zero_one_tsv(tmp_path / "pairs.tsv")
    code, out, err = cli(capsys, "train", "--task", "pair", "--max-passage-len", "24", "--max-question-len", "16",
                         "--model", str(tiny_qa_checkpoint), "--data", data, "--no-tracking")
    assert code == 0, err
    assert [o.max_passage_len for o in no_ray_training] == [24]
    code, out, _ = cli(capsys, "eval", "--task", "pair", "--max-passage-len", "16", "--doc-stride", "100", "--model",
                       str(tiny_qa_checkpoint), "--data", data, "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["examples"] == 8
