"""A question longer than the model's question length is cut to it, and the commands say so in one line (issue 34,
item 9): `answer` for its one question, `eval` (and training's data check) with a count of the questions cut."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.test_hostile_cache import P, Q, STRIDE, build, save_tiny_model

ROOM = Q - 2  # [CLS] and [SEP] take two of the Q positions
WINDOWS = ["--max-passage-len", str(P), "--doc-stride", str(STRIDE)]  # the tiny model has 128 positions
CONTEXT = "Ada Lovelace was born in London in 1815. She wrote the first program for the Analytical Engine."


@pytest.fixture(autouse=True)
def one_line_errors(monkeypatch):
    monkeypatch.delenv("DECOUPLE_DEBUG", raising=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"), tokenizer)


@pytest.fixture
def cli(capsys, caplog):
    """Run ``decouple ARGS`` in this process; returns (exit code, stdout, stderr lines). The loaders' problem lines
    are logged (on the console by logging's last-resort handler; pytest captures them as records) and join stderr."""
    def call(*argv: str) -> tuple[int, str, list[str]]:
        caplog.clear()
        capsys.readouterr()  # what ran before (a cache build) is not this command's
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        problems = [r.getMessage() for r in caplog.records if r.name.startswith("trainables")]
        return code, out, problems + [line for line in err.splitlines() if line.strip()]

    return call


def tokens(tokenizer, question: str) -> int:
    return len(tokenizer(question, add_special_tokens=False)["input_ids"])


def test_answer_says_when_its_question_was_cut(cli, model_dir, tmp_path, tokenizer):
    """Before: a 10,000-character question was cut to the model's question length with no note."""
    cache = build(model_dir, tmp_path / "cache")
    question = ("Where was the woman who wrote the first program for the Analytical Engine born? " * 125)[:10_000]
    code, out, err = cli("answer", "--model", str(model_dir), "--cache", str(cache), "--question", question, "--json")
    assert code == 0 and json.loads(out)["passage_id"]
    notes = [line for line in err if "note:" in line]
    assert notes == [f"[answer] note: the question has {tokens(tokenizer, question)} tokens but the model's "
                     f"max_question_len = {Q} fits {ROOM}; only its first {ROOM} were read: shorten the question"]
    assert len(err) == 2 and err[0].startswith("[answer] using ")  # the settings line, then the note
    code, _, err = cli("answer", "--model", str(model_dir), "--cache", str(cache), "--question", "Who wrote it?")
    assert code == 0 and not [line for line in err if "note:" in line]


def squad(path: Path, questions: dict[str, str]) -> str:
    qas = [{"id": qid, "question": q, "answers": [{"text": "London", "answer_start": CONTEXT.index("London")}]}
           for qid, q in questions.items()]
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "Ada", "paragraphs": [
        {"context": CONTEXT, "qas": qas}]}]}))
    return str(path)


def test_eval_counts_the_questions_cut_in_one_line(cli, model_dir, tmp_path, tokenizer):
    """Before: one line per question cut, so a data set of long questions filled the console."""
    long = {f"long-{n}": "Where was Ada Lovelace, who wrote the first program, born? " * (n + 2) for n in range(3)}
    data = squad(tmp_path / "long.json", {"short": "Where was Ada born?", **long})
    code, out, err = cli("eval", "--model", str(model_dir), "--data", data, *WINDOWS, "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["examples"] == 4
    cut = [line for line in err if "max_question_len" in line]
    longest = tokens(tokenizer, long["long-2"])
    assert cut == [f"long.json: 3 questions have more tokens than max_question_len = {Q} fits ({ROOM}), the longest "
                   f"{longest} (example long-2); truncated: raise max_question_len or shorten the questions"]


def test_one_question_cut_is_named(cli, model_dir, tmp_path, tokenizer):
    question = "Where was Ada Lovelace, who wrote the first program, born? " * 3
    data = squad(tmp_path / "one.json", {"short": "Where was Ada born?", "long": question})
    code, _, err = cli("eval", "--model", str(model_dir), "--data", data, *WINDOWS, "--json")
    assert code == 0
    assert [line for line in err if "max_question_len" in line] == [
        f"one.json: example long: field 'question' has {tokens(tokenizer, question)} tokens but max_question_len = "
        f"{Q} fits {ROOM}; truncated: raise max_question_len or shorten the question"]


def test_the_cut_question_is_what_the_model_reads(model_dir, tokenizer):
    """The note's count is the cut `question_tensors` makes: [CLS], the first ROOM tokens, [SEP]."""
    from trainables.cache.reader import question_ids, question_tensors

    question = "Where was Ada Lovelace born? " * 20
    ids, mask = question_tensors(tokenizer, question, Q)
    assert ids.shape == (1, Q) and int(mask.sum()) == Q
    assert ids[0, 1:-1].tolist() == question_ids(tokenizer, question)[:ROOM]
