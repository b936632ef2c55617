"""The synthetic claim-verification pairs: deterministic, balanced, and unsolvable from either sentence alone."""
from __future__ import annotations

import re
from collections import Counter

import pytest

from trainables.data.errors import DataError
from trainables.data.pairs import load_pairs
from trainables.data.synthetic import RELATIONS
from trainables.data.synthetic_pairs import LABEL_NAMES, synthetic_pairs


def _fact(sentence: str) -> tuple[str, str]:
    """(person, value) of one generated fact sentence, read back through its relation's templates."""
    for relation in RELATIONS:
        for template in relation.facts:
            pattern = re.escape(template).replace(r"\{e\}", r"(?P<e>[A-Z][a-z]+)").replace(r"\{v\}", r"(?P<v>.+?)")
            match = re.fullmatch(pattern, sentence)
            if match and match["v"] in relation.values:
                return match["e"], match["v"]
    raise AssertionError(f"not a generated fact: {sentence!r}")


def _statements(passage: str) -> list[str]:
    return [s if s.endswith(".") else s + "." for s in passage.split(". ")]


def test_same_seed_same_pairs_other_seed_differs_and_ids_are_unique():
    assert synthetic_pairs(seed=3, pairs=50) == synthetic_pairs(seed=3, pairs=50)
    assert synthetic_pairs(seed=3, pairs=50) != synthetic_pairs(seed=4, pairs=50)
    examples = synthetic_pairs(pairs=300)
    assert len({ex.id for ex in examples}) == 300


def test_classes_are_balanced_and_the_label_says_whether_the_passage_states_the_claim():
    examples = synthetic_pairs(seed=1, pairs=400, people=3)
    assert Counter(ex.label for ex in examples) == {0: 200, 1: 200}
    for ex in examples:
        person, value = _fact(ex.sentence1)
        stated = dict(_fact(s) for s in _statements(ex.sentence2))
        assert len(stated) == 3 and len(set(stated.values())) == 3
        assert value in stated.values() and person in stated  # every word of the claim is in the passage
        assert (stated[person] == value) == (LABEL_NAMES[ex.label] == "entailment")


def test_neither_sentence_alone_predicts_the_label():
    examples = synthetic_pairs(seed=2, pairs=2000, people=2)
    by_claim_relation = Counter((next(r.name for r in RELATIONS if _fact(ex.sentence1)[1] in r.values), ex.label)
                                for ex in examples)
    for relation in RELATIONS:  # each relation's claims are about half of each class
        yes, no = by_claim_relation[(relation.name, 0)], by_claim_relation[(relation.name, 1)]
        assert abs(yes - no) < 0.25 * (yes + no)
    first_statement_states_claim = Counter(
        (_fact(ex.sentence2.split(". ")[0] + ".")[0] == _fact(ex.sentence1)[0], ex.label) for ex in examples)
    for position in (True, False):  # where the claimed person sits in the passage says nothing either
        yes, no = first_statement_states_claim[(position, 0)], first_statement_states_claim[(position, 1)]
        assert abs(yes - no) < 0.15 * (yes + no)


def test_load_pairs_reads_the_synthetic_set_with_its_options_and_refuses_unknown_ones():
    examples, names, report = load_pairs("synthetic:seed=5,pairs=40,people=2", limit=30)
    assert names == LABEL_NAMES and len(examples) == 30 and report.summary() == (
        "synthetic:seed=5,pairs=40,people=2: kept 30, skipped 0")
    assert examples == synthetic_pairs(seed=5, pairs=40, people=2)[:30]
    with pytest.raises(DataError, match="unknown option 'articles'; use seed, pairs, people"):
        load_pairs("synthetic:articles=3")
    with pytest.raises(ValueError, match="people = 0; use 1 to"):
        synthetic_pairs(people=0)


def test_one_person_refutes_with_a_value_the_passage_does_not_state():
    for ex in synthetic_pairs(seed=3, pairs=200, people=1):
        (person, value), (stated_person, stated_value) = _fact(ex.sentence1), _fact(ex.sentence2)
        assert person == stated_person and (value == stated_value) == (ex.label == 0)
