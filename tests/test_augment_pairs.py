"""`decouple augment`: new pairs from the data's own sentences (nearest neighbours) or substituted copies of its
pairs, labelled by the teacher."""
from __future__ import annotations

import random

import pytest
import torch
import transformers

from orchestrator.cli import main
from trainables.data.neighbour_pairs import neighbour_pairs
from trainables.data.pairs import build_pair_features, load_pairs
from trainables.data.word_substitution import candidate_words, similar_words, substitute, substituted_pairs
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


def test_similar_words_by_hand():
    vocab = {"[PAD]": 0, "cat": 1, "dog": 2, "car": 3, "##s": 4, "Cat": 5, "x": 6, "dogs2": 7}
    assert candidate_words(vocab) == ["car", "cat", "dog"]  # whole lower-case words of two letters or more
    # cat·dog 0.8, cat·car 0, dog·car 0.6; "##s" (a piece) and "bird" (not in the vocabulary) get none.
    table = torch.zeros(8, 2)
    table[1], table[2], table[3] = torch.tensor([1.0, 0.0]), torch.tensor([0.8, 0.6]), torch.tensor([0.0, 1.0])
    got = similar_words(table, vocab, ["cat", "dog", "car", "bird", "cat"], candidate_words(vocab), k=1)
    assert got == {"cat": ["dog"], "dog": ["cat"], "car": ["dog"]}
    assert similar_words(table, vocab, ["cat"], candidate_words(vocab), k=2, block=1) == {"cat": ["dog", "car"]}


def test_substitute_by_hand():
    neighbours = {"cat": ["dog"], "sat": ["stood"]}
    # Every word with neighbours replaced at probability 1, capitals kept, the rest (numbers, punctuation) as written.
    assert substitute("The Cat sat, 3 times.", neighbours, 1.0, random.Random(0)) == "The Dog stood, 3 times."
    assert substitute("The Cat sat.", neighbours, 1e-9, random.Random(0)) == "The Cat sat."
    # Copies equal to the pair or to an earlier copy are dropped: one distinct copy of a pair, none of a pair with
    # nothing to replace.
    assert substituted_pairs([("a cat", "it sat"), ("no", "words")], neighbours, copies=3, prob=1.0) == [
        (0, "a dog", "it stood")]


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


def test_augment_substitutes_words_in_copies_of_each_pair(pair_data, teacher, tmp_path, capsys):
    out = tmp_path / "substituted.tsv"
    assert main(["augment", "--method", "substitute", "--data", str(pair_data), "--teacher", str(teacher),
                 "--output", str(out), "--copies", "3", "--replace-prob", "0.5"]) == 0
    assert "[augment] " in capsys.readouterr().out
    examples, _, report = load_pairs(str(out))
    assert report.skipped == 0 and len(examples) > 4 + 4  # every pair of the data has replaceable words
    pairs = {example.id: (example.sentence1, example.sentence2) for example in examples[:4]}
    for example in examples[4:]:
        first, second = pairs[example.id.split("-sub")[0]]  # a copy's id is its pair's, then -sub1, -sub2, ...
        assert (example.sentence1, example.sentence2) != (first, second)
        # A copy keeps its pair's length in words, and its numbers and punctuation where they were.
        for new, old in ((example.sentence1, first), (example.sentence2, second)):
            assert len(new.split()) == len(old.split()) and new[-1] == old[-1]
    model = DecoupledModel.from_pretrained(teacher)
    features = build_pair_features(examples[4:], model.tokenizer, max_question_len=24, max_passage_len=256)
    with torch.inference_mode():
        predicted = model(features.question_ids, features.question_mask, features.passage_ids,
                          features.passage_mask).logits.argmax(-1)
    assert [e.label for e in examples[4:]] == predicted.tolist()


@pytest.mark.parametrize("flags, field", [(["--method", "mlm"], "method="), (["--replace-prob", "0"], "replace_prob="),
                                          (["--copies", "0"], "copies=")])
def test_augment_refuses_bad_settings_in_one_line(pair_data, teacher, tmp_path, capsys, flags, field):
    out = tmp_path / "augmented.tsv"
    assert main(["augment", "--data", str(pair_data), "--teacher", str(teacher), "--output", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and not out.exists()
