"""`decouple eval` through the real CLI entry point: JSON contract and one-line errors."""
from __future__ import annotations

import json

import pytest

from orchestrator.cli import main
from tests.conftest import SHARED_DATA


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_qa_prints_one_json_object_last(capsys, tiny_qa_checkpoint):
    code = main(["eval", "--model", str(tiny_qa_checkpoint), "--data", "synthetic:articles=2", "--split", "1", "--json"])
    result = last_json(capsys)
    assert code == 0
    assert result["examples"] == 2 * 4 * 6  # articles x paragraphs x questions of the generator's defaults
    assert 0.0 <= result["exact_match"] <= result["f1"] <= 100.0
    assert result["split"] == 1


@pytest.mark.skipif(not (SHARED_DATA / "rte-train.tsv").is_file(), reason="shared RTE data absent")
def test_eval_pairs_from_tsv(capsys, tiny_qa_checkpoint):
    code = main(["eval", "--model", str(tiny_qa_checkpoint), "--data", str(SHARED_DATA / "rte-train.tsv"),
                 "--limit", "16", "--json"])
    result = last_json(capsys)
    assert code == 0 and result["examples"] == 16 and 0.0 <= result["accuracy"] <= 100.0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--split", "9"], "split=9 is larger than the model's 2 layers"),
        (["--compression-ratio", "5", "--split", "1"], "compression_ratio=5 does not divide the hidden size 32"),
        (["--data", "/nonexistent/squad.json"], "/nonexistent/squad.json"),
        (["--batch-size", "0"], "batch_size=0 must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tiny_qa_checkpoint, args, message):
    code = main(["eval", "--model", str(tiny_qa_checkpoint), "--data", "synthetic:articles=1", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1
