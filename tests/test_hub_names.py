"""Hub names (``org/name``, ``org/name@revision``) as --model / --teacher of every command, read from an offline
Hugging Face cache built here: ``$HF_HOME/hub/models--org--name/snapshots/<sha>/`` holding a tiny checkpoint and
``refs/main`` naming ``<sha>``, with ``HF_HUB_OFFLINE=1``. Nothing here reaches the network."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForQuestionAnswering, BertForSequenceClassification, BertModel

from orchestrator.cli import main
from orchestrator.train import loop_config
from trainables.model.source import resolve_model
from trainables.options import TrainOptions

SHA = "a" * 40
QA = "synthetic:articles=2"
TINY_TRAIN = ["--max-question-len", "16", "--max-passage-len", "48", "--doc-stride", "16", "--epochs", "1",
              "--max-train-examples", "8", "--max-eval-examples", "4", "--eval-articles", "1", "--no-tracking",
              "--no-progress"]


@pytest.fixture(autouse=True)
def one_line_errors(monkeypatch):
    monkeypatch.delenv("DECOUPLE_DEBUG", raising=False)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An offline Hugging Face cache in ``tmp_path/hf``; returns ``publish(repo, checkpoint)`` -> its snapshot dir."""
    import huggingface_hub.constants as constants

    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads both variables when it is imported, and this process imported it already.
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def publish(repo: str, checkpoint: Path) -> Path:
        folder = home / "hub" / f"models--{repo.replace('/', '--')}"
        shutil.copytree(checkpoint, folder / "snapshots" / SHA)
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(SHA)
        return folder / "snapshots" / SHA

    return publish


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # what the test's own set-up printed (transformers' save progress) is not the command's
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def refused(capsys, *argv: str) -> str:
    """The one stderr line of a command that must exit 2."""
    code, _, err = cli(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    return lines[0]


def _checkpoint(path: Path, tokenizer, model) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _tiny(**extra) -> BertConfig:
    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128, **extra)


def pair_tsv(path: Path, labels=("0", "1"), rows: int = 8) -> str:
    lines = ["index\tsentence1\tsentence2\tlabel"]
    lines += [f"{i}\tThe cat {i} sleeps.\tA cat rests.\t{labels[i % 2]}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# ---- resolution ------------------------------------------------------------------------------------------------------
def test_a_hub_name_and_its_revision_are_the_cached_snapshot(hub, tiny_qa_checkpoint):
    snapshot = hub("org/tiny-squad", tiny_qa_checkpoint)
    assert resolve_model("org/tiny-squad") == str(snapshot)
    assert resolve_model(f"org/tiny-squad@{SHA}") == str(snapshot)
    options = TrainOptions(mode="student", teacher="org/tiny-squad", split=1, max_question_len=16, max_passage_len=48,
                           doc_stride=16)
    loop = loop_config(options)  # what Ray workers get: directories, never a name to look up
    assert loop.init_path == loop.teacher_path == str(snapshot)
    assert options.to_dict()["teacher"] == "org/tiny-squad"  # the record keeps the name


def test_path_looking_names_never_reach_the_hub(hub, tmp_path, monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("asked the hub")

    monkeypatch.setattr("huggingface_hub.snapshot_download", no_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for name in ("./org/tiny", "runs/teacher", str(tmp_path / "absent"), "a/b/c", "~/absent-model", "org/x@bad rev"):
        with pytest.raises(FileNotFoundError, match="no such directory; check the path"):
            resolve_model(name)


# ---- every command ----------------------------------------------------------------------------------------------------
def test_an_uncached_hub_name_offline_is_one_line_in_every_command(hub, capsys, tmp_path):
    from tests.test_hostile_inputs import tiny_cache

    cache = str(tiny_cache(tmp_path / "cache"))
    commands = [
        ["train", "--model", "org/absent", *TINY_TRAIN],
        ["train", "--mode", "student", "--teacher", "org/absent", "--split", "1", *TINY_TRAIN],
        ["sweep", "split", "--smoke", "--model", "org/absent", "--storage", str(tmp_path / "sweeps")],
        ["cache", "build", "--model", "org/absent", "--data", QA, "--out", str(tmp_path / "out")],
        ["bench", "--model", "org/absent", "--splits", "0"],
        ["eval", "--model", "org/absent", "--data", QA],
        ["answer", "--model", "org/absent", "--cache", cache, "--question", "Who?"],
    ]
    for argv in commands:
        line = refused(capsys, *argv)
        assert line.startswith(f"decouple {argv[0]}: error: ")
        label = "teacher" if "--teacher" in argv else "model"
        assert f"{label} org/absent: not a local directory, and HF_HUB_OFFLINE is set but the Hugging Face cache " \
               f"{tmp_path / 'hf' / 'hub'} does not hold it" in line, argv


def test_train_distils_a_hub_teacher(hub, capsys, tiny_qa_checkpoint, no_ray_training, tmp_path):
    snapshot = hub("deepset/tiny-squad", tiny_qa_checkpoint)
    code, out, _ = cli(capsys, "train", "--mode", "student", "--teacher", "deepset/tiny-squad", "--split", "1",
                       "--data", QA, "--output-dir", str(tmp_path / "student"), *TINY_TRAIN)
    assert code == 0, out
    (options,) = no_ray_training
    assert options.teacher == "deepset/tiny-squad"
    assert loop_config(options).teacher_path == str(snapshot)


def test_a_worker_trains_from_the_snapshot_a_hub_name_resolves_to(hub, tiny_qa_checkpoint, tmp_path):
    """The worker side of a hub teacher: the student starts from and distils the snapshot (one tiny epoch)."""
    from trainables.training.loop import Worker

    hub("org/tiny-squad", tiny_qa_checkpoint)
    options = TrainOptions(mode="student", teacher="org/tiny-squad", split=1, kd_ratio=0.5, data=QA, eval_articles=1,
                           max_question_len=16, max_passage_len=48, doc_stride=16, epochs=1, batch_size=4,
                           max_train_examples=8, max_eval_examples=4, progress=False)
    reports = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Worker(loop_config(options), 0, 1, torch.device("cpu")).run(None, lambda m, folder: reports.append(m))
    finally:
        torch.set_num_threads(threads)
    (metrics,) = reports
    assert metrics["train_kd"] > 0 and 0 <= metrics["eval_f1"] <= 100


def test_a_teacher_without_the_task_head_is_refused_before_ray(hub, capsys, tokenizer, tmp_path, ray_starts):
    hub("org/encoder", _checkpoint(tmp_path / "encoder", tokenizer, BertModel(_tiny())))
    line = refused(capsys, "train", "--mode", "student", "--teacher", "org/encoder", "--split", "1", "--data", QA,
                   "--output-dir", str(tmp_path / "student"), *TINY_TRAIN)
    assert line == ("decouple train: error: teacher org/encoder: has no trained qa head ('qa_outputs' is not in its "
                    "weights); pass a model fine-tuned for qa: a `decouple train --mode teacher` output or a hub "
                    "question-answering model")
    assert ray_starts == []


def test_a_hub_teachers_shape_is_checked_like_the_models(hub, capsys, tokenizer, tiny_qa_checkpoint, tmp_path):
    torch.manual_seed(0)
    hub("org/short", _checkpoint(tmp_path / "short", tokenizer, BertForQuestionAnswering(_tiny())))  # 128 positions
    common = ["train", "--mode", "student", "--teacher", "org/short", "--split", "1", "--data", QA, "--output-dir",
              str(tmp_path / "student"), *TINY_TRAIN, "--max-passage-len", "200"]
    assert refused(capsys, *common).endswith(  # the student starts from the teacher
        "max_question_len + max_passage_len = 216 exceeds the 128 positions of teacher 'org/short'; shorten "
        "max_passage_len")
    assert refused(capsys, *common, "--student-init", "pretrained", "--model", str(tiny_qa_checkpoint)).endswith(
        "max_question_len + max_passage_len = 216 exceeds the 128 positions of teacher 'org/short'; shorten "
        "max_passage_len")  # the student has 512 positions, but the teacher reads the same inputs


def test_a_pair_teacher_must_have_the_datas_classes(hub, capsys, tokenizer, tmp_path, no_ray_training):
    torch.manual_seed(0)
    hub("org/nli", _checkpoint(tmp_path / "nli", tokenizer, BertForSequenceClassification(_tiny(num_labels=3))))
    named = _tiny(id2label={0: "yes", 1: "no"}, label2id={"yes": 0, "no": 1})
    hub("org/yes-no", _checkpoint(tmp_path / "yn", tokenizer, BertForSequenceClassification(named)))
    data = pair_tsv(tmp_path / "pairs.tsv", labels=("no", "yes"))
    common = ["--mode", "student", "--task", "pair", "--split", "1", "--data", data,
              "--output-dir", str(tmp_path / "student"), *TINY_TRAIN]
    assert refused(capsys, "train", "--teacher", "org/nli", "--labels", "no,yes", *common).endswith(
        "teacher org/nli: its head has 3 classes, the data 2 (no, yes); pass a teacher fine-tuned on the data's labels")
    assert refused(capsys, "train", "--teacher", "org/yes-no", "--labels", "no,yes", *common).endswith(
        "teacher org/yes-no: its classes are yes, no, the data's no, yes; pass --labels with the data's labels in the "
        "teacher's class order, or a teacher of these labels")
    code, out, _ = cli(capsys, "train", "--teacher", "org/yes-no", "--labels", "yes,no", *common)
    assert code == 0, out
    assert [o.teacher for o in no_ray_training] == ["org/yes-no"]


def test_sweep_scores_a_hub_teacher_only_on_eval_data(hub, capsys, tiny_qa_checkpoint, tmp_path):
    hub("org/tiny-squad", tiny_qa_checkpoint)
    line = refused(capsys, "sweep", "split", "--smoke", "--teacher", "org/tiny-squad", "--model",
                   str(tiny_qa_checkpoint), "--storage", str(tmp_path / "sweeps"))
    assert line.endswith("--teacher org/tiny-squad: no metrics.json (not a `decouple train` checkpoint), so its score "
                         "is unknown; pass --eval-data for the sweep to score it there")


def test_eval_bench_and_cache_options_take_hub_names(hub, capsys, tiny_qa_checkpoint, tmp_path):
    from orchestrator.cache_options import CacheBuildOptions
    from trainables.cache.encoder import load_model

    snapshot = hub("org/tiny-squad", tiny_qa_checkpoint)
    code, out, _ = cli(capsys, "eval", "--model", "org/tiny-squad", "--data", "synthetic:articles=1", "--limit", "2",
                       "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["examples"] == 2
    code, out, _ = cli(capsys, "bench", "--model", "org/tiny-squad", "--splits", "1", "--batch-size", "1",
                       "--max-question-len", "8", "--max-passage-len", "16", "--repeats", "1", "--warmup", "0",
                       "--json")
    assert code == 0, out
    options, line = CacheBuildOptions(model="org/tiny-squad", data=QA, out=str(tmp_path / "c")).settled()
    assert (options.max_passage_len, options.doc_stride, line) == (256, 128, None)  # no training record: defaults
    assert load_model("org/tiny-squad", {}).hf_config.hidden_size == 32
    assert resolve_model("org/tiny-squad") == str(snapshot)
