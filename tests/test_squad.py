"""SQuAD loading: v1.1 / v2.0 JSON, hub-format rows through ``datasets``, bad input, article splits."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from trainables.data.errors import DataError
from trainables.data.features import QAExample
from trainables.data.squad import load_squad, split_by_article
from trainables.data.synthetic import synthetic_squad

DATA = Path(__file__).parents[2] / "shared" / "data"
REAL_SQUAD = DATA / "squad-v1.1-dev-part-a.json"
CONTEXT = "Super Bowl 50 was won by the Denver Broncos in 2016."


def _qa(qid: str, question: str = "Who won?", text: str = "Denver Broncos", start: int = 29, **extra) -> dict:
    return {"id": qid, "question": question, "answers": [{"text": text, "answer_start": start}], **extra}


def _write(tmp_path: Path, qas: list[dict], name: str = "squad.json", context: str = CONTEXT,
           version: str = "1.1") -> str:
    data = {"version": version,
            "data": [{"title": "Super_Bowl_50", "paragraphs": [{"context": context, "qas": qas}]}]}
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_v11_file_loads_every_field(tmp_path):
    qas = [
        _qa("q1"),
        {"id": "q2", "question": "When?", "answers": [{"text": "2016", "answer_start": 47},
                                                      {"text": "in 2016", "answer_start": 44}]},
    ]
    examples, report = load_squad(_write(tmp_path, qas))
    assert examples == [
        QAExample("q1", "Who won?", CONTEXT, ("Denver Broncos",), (29,), "Super_Bowl_50"),
        QAExample("q2", "When?", CONTEXT, ("2016", "in 2016"), (47, 44), "Super_Bowl_50"),
    ]
    assert (report.kept, report.skipped, report.problems) == (2, 0, [])
    assert report.summary() == "squad.json: kept 2, skipped 0"


def test_v20_file_reads_impossible_questions(tmp_path):
    qas = [_qa("a", is_impossible=False),
           {"id": "b", "question": "Who lost?", "answers": [], "is_impossible": True,
            "plausible_answers": [{"text": "Super Bowl", "answer_start": 0}]}]
    examples, report = load_squad(_write(tmp_path, qas, version="v2.0"))
    assert [ex.is_impossible for ex in examples] == [False, True]
    assert examples[1].answers == () and examples[1].answer_starts == ()
    assert report.kept == 2 and report.skipped == 0


def test_limit_stops_after_that_many_kept(tmp_path):
    examples, report = load_squad(_write(tmp_path, [_qa(f"q{i}") for i in range(5)]), limit=3)
    assert [ex.id for ex in examples] == ["q0", "q1", "q2"]
    assert report.kept == 3


def test_malformed_json_is_fatal_and_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"data": [', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json: malformed JSON at line 1"):
        load_squad(str(path))


def test_missing_file_and_wrong_layout_are_fatal(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_squad(str(tmp_path / "absent.json"))
    path = tmp_path / "list.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match=r"list\.json: field 'data' is missing"):
        load_squad(str(path))


def test_answer_not_at_its_start_is_skipped_with_one_line(tmp_path, caplog):
    qas = [_qa("good"), _qa("56be4db0acb8001400a502ec", start=20)]
    with caplog.at_level(logging.WARNING):
        examples, report = load_squad(_write(tmp_path, qas))
    assert [ex.id for ex in examples] == ["good"]
    line = ("squad.json: example 56be4db0acb8001400a502ec: field 'answers[0].answer_start' = 20 does not point "
            "at text 'Denver Broncos' (the context has 'n by the Denve' there); fix the offset or the text")
    assert report.problems == [line]
    assert (report.kept, report.skipped) == (1, 1)
    assert line in caplog.messages


@pytest.mark.parametrize("qa, field_name", [
    ({"id": "x", "answers": [{"text": "Denver Broncos", "answer_start": 29}]}, "question"),
    ({"id": "x", "question": "   ", "answers": [{"text": "Denver Broncos", "answer_start": 29}]}, "question"),
    ({"id": "x", "question": "Who won?"}, "answers"),
    ({"id": "x", "question": "Who won?", "answers": []}, "answers"),
    ({"id": "x", "question": "Who won?", "answers": [{"answer_start": 29}]}, "answers[0].text"),
    ({"id": "x", "question": "Who won?", "answers": [{"text": "Denver Broncos"}]}, "answers[0].answer_start"),
    (_qa("x", is_impossible="yes"), "is_impossible"),
    (_qa("x", is_impossible=True), "answers"),
])
def test_bad_example_is_skipped_naming_file_id_and_field(tmp_path, qa, field_name):
    examples, report = load_squad(_write(tmp_path, [_qa("ok"), qa]))
    assert [ex.id for ex in examples] == ["ok"]
    assert (report.kept, report.skipped) == (1, 1)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"squad.json: example x: field '{field_name}' ")


def test_missing_id_names_the_position_and_duplicate_id_is_skipped(tmp_path):
    qas = [_qa("dup"), {"question": "Who won?", "answers": [{"text": "Denver Broncos", "answer_start": 29}]},
           _qa("dup")]
    examples, report = load_squad(_write(tmp_path, qas))
    assert len(examples) == 1 and report.skipped == 2
    assert report.problems[0].startswith("squad.json: example at data[0].paragraphs[0].qas[1]: field 'id' is missing")
    assert report.problems[1].startswith("squad.json: example dup: field 'id' = 'dup' repeats an earlier example")


def test_missing_context_skips_each_question_of_the_paragraph(tmp_path):
    data = {"data": [{"title": "T", "paragraphs": [{"qas": [_qa("a"), _qa("b")]}, {"context": CONTEXT}]}]}
    path = tmp_path / "noctx.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    examples, report = load_squad(str(path))
    assert examples == [] and (report.kept, report.skipped) == (0, 2)
    assert report.problems[0] == "noctx.json: example a: field 'context' is missing; give the paragraph its text"
    assert report.problems[2].startswith("noctx.json: data[0].paragraphs[1]: field 'qas' is missing")


@pytest.mark.skipif(not REAL_SQUAD.is_file(), reason="../shared/data/squad-v1.1-dev-part-a.json not present")
def test_real_squad_dev_part_loads_whole():
    examples, report = load_squad(str(REAL_SQUAD))
    assert report.summary() == "squad-v1.1-dev-part-a.json: kept 5397, skipped 0"
    assert report.problems == []
    assert len({ex.title for ex in examples}) == 24
    assert len({ex.passage_id for ex in examples}) == 1023
    train, evaluation = split_by_article(examples, eval_articles=6, seed=0)
    assert len({ex.title for ex in evaluation}) == 6 and len(train) + len(evaluation) == 5397
    assert not {ex.title for ex in train} & {ex.title for ex in evaluation}
    assert not {ex.passage_id for ex in train} & {ex.passage_id for ex in evaluation}


def test_split_by_article_is_seeded_and_order_free():
    examples = synthetic_squad(seed=0, articles=8, paragraphs_per_article=1, questions_per_paragraph=2)
    train, evaluation = split_by_article(examples, eval_articles=3, seed=1)
    again = split_by_article(list(reversed(examples)), eval_articles=3, seed=1)[1]
    assert {ex.id for ex in evaluation} == {ex.id for ex in again}
    assert {ex.title for ex in evaluation} != {ex.title for ex in split_by_article(examples, eval_articles=3,
                                                                                   seed=2)[1]}
    assert [ex for ex in examples if ex in evaluation] == evaluation
    with pytest.raises(ValueError, match="eval_articles = 9 but the data has 8 articles"):
        split_by_article(examples, eval_articles=9)


def test_synthetic_source_passes_arguments_and_rejects_unknown_ones():
    examples, report = load_squad("synthetic:seed=3,articles=2", limit=5)
    assert examples == synthetic_squad(seed=3, articles=2)[:5]
    assert report.summary() == "synthetic:seed=3,articles=2: kept 5, skipped 0"
    with pytest.raises(DataError, match="unknown option 'colour'"):
        load_squad("synthetic:colour=3")
    with pytest.raises(DataError, match="option 'seed' = 'x' is not an integer"):
        load_squad("synthetic:seed=x")


def _hub_row(qid: str, text: list[str], start: list[int]) -> dict:
    return {"id": qid, "title": "T", "context": CONTEXT, "question": "Who won?",
            "answers": {"text": text, "answer_start": start}}


def test_hub_layout_rows_load_through_datasets(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    folder = tmp_path / "squad_like"
    folder.mkdir()
    rows = [_hub_row("a", ["Denver Broncos"], [29]), _hub_row("b", [], []), _hub_row("c", ["Denver"], [3])]
    (folder / "validation.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    examples, report = load_squad(str(folder))
    assert [(ex.id, ex.is_impossible, ex.answers) for ex in examples] == [("a", False, ("Denver Broncos",)),
                                                                          ("b", True, ())]
    assert (report.kept, report.skipped) == (2, 1)
    assert report.problems[0].startswith(f"{folder}: example c: field 'answers[0].answer_start' = 3")


def test_unloadable_hub_name_is_fatal(tmp_path):
    pytest.importorskip("datasets")
    with pytest.raises(DataError, match="datasets.load_dataset"):
        load_squad(str(tmp_path / "no_such_dataset_folder"))
