"""`decouple augment`: new pairs from the data's own sentences (nearest neighbours), labelled by the teacher."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from orchestrator.cli import main
from trainables.data.neighbour_pairs import neighbour_pairs
from trainables.data.pairs import build_pair_features, load_pairs
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel


def unit(*rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_neighbour_pairs_by_hand():
    # a·b 0.8, b·c 0.6, c·d 0, a·c 0, a·d -1, b·d -0.8: each row's nearest is a-b, b-a, c-b, d-c.
    a, b, c, d = (1.0, 0.0), (0.8, 0.6), (0.0, 1.0), (-1.0, 0.0)
    assert neighbour_pairs(unit(a, b, c, d), 1) == [(0, 1), (1, 2), (2, 3)]
    assert neighbour_pairs(unit(a, b, c, d), 1, exclude=[(1, 0)]) == [(1, 2), (2, 3)]  # a pair of the data, any order
    # d's second nearest is b (-0.8); ties (0.0) in index order.
    assert neighbour_pairs(unit(a, b, c, d), 2) == [(0, 1), (1, 2), (0, 2), (2, 3), (1, 3)]
    assert neighbour_pairs(unit(a, b, a), 1) == [(0, 1), (1, 2)]  # the same sentence twice is never a pair
    assert neighbour_pairs(unit(a, b, c, d), 1, block=3) == neighbour_pairs(unit(a, b, c, d), 1)


ROWS = [  # (label, sentence1, sentence2): the close sentences sit in different rows
    ("1", "The stock market fell sharply on Monday morning.", "Shares dropped steeply when trading opened Monday."),
    ("0", "Stocks tumbled at the start of Monday's trading.", "The weather in Paris was rainy all week."),
    ("0", "It rained in Paris for the whole week.", "The company hired two hundred new engineers."),
    ("1", "Two hundred engineers were hired by the firm.", "Apple unveiled a new phone on Tuesday."),
]


@pytest.fixture()
def pair_data(tmp_path):
    path = tmp_path / "pairs.tsv"
    lines = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    lines += [f"{label}\t{2 * n}\t{2 * n + 1}\t{s1}\t{s2}" for n, (label, s1, s2) in enumerate(ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def teacher(tmp_path, tokenizer):
    torch.manual_seed(0)
    hf_config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    model = DecoupledModel.from_hf_config(hf_config, DecoupledConfig(task="pair", max_question_len=24))
    model.tokenizer = tokenizer
    model.save_pretrained(tmp_path / "teacher")
    return tmp_path / "teacher"


def test_augment_writes_the_data_then_teacher_labelled_neighbour_pairs(pair_data, teacher, tmp_path, capsys):
    out = tmp_path / "augmented.tsv"
    assert main(["augment", "--data", str(pair_data), "--teacher", str(teacher), "--output", str(out),
                 "--neighbours", "1"]) == 0
    assert "[augment] " in capsys.readouterr().out
    examples, names, report = load_pairs(str(out))
    assert report.skipped == 0 and names == ("not_paraphrase", "paraphrase")  # MRPC's classes, as in the data
    original, _, _ = load_pairs(str(pair_data))
    assert [(e.sentence1, e.sentence2, e.label) for e in examples[:4]] == [
        (e.sentence1, e.sentence2, e.label) for e in original]
    new = examples[4:]
    texts = {frozenset((e.sentence1, e.sentence2)) for e in new}
    # all-MiniLM-L6-v2 finds the close sentences of different rows...
    assert frozenset((ROWS[0][1], ROWS[1][1])) in texts  # Monday's market fall, twice
    assert frozenset((ROWS[1][2], ROWS[2][1])) in texts  # rain in Paris, twice
    assert frozenset((ROWS[2][2], ROWS[3][1])) in texts  # two hundred engineers, twice
    assert not texts & {frozenset((s1, s2)) for _, s1, s2 in ROWS}  # ...and never repeats a pair of the data
    # Labels are the teacher's predictions on the new pairs.
    model = DecoupledModel.from_pretrained(teacher)
    features = build_pair_features(new, model.tokenizer, max_question_len=24, max_passage_len=256)
    with torch.inference_mode():
        predicted = model(features.question_ids, features.question_mask, features.passage_ids,
                          features.passage_mask).logits.argmax(-1)
    assert [e.label for e in new] == predicted.tolist()


def test_augment_refuses_an_existing_output_in_one_line(pair_data, teacher, tmp_path, capsys):
    out = tmp_path / "augmented.tsv"
    out.write_text("kept\n")
    assert main(["augment", "--data", str(pair_data), "--teacher", str(teacher), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "output=" in err and "exists" in err
    assert out.read_text() == "kept\n"
