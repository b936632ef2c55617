"""The synthetic QA generator: deterministic, exact offsets, and unsolvable without relating question to passage."""
from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest

from trainables.data.features import QAExample
from trainables.data.squad import load_squad, split_by_article
from trainables.data.synthetic import RELATIONS, RELATIONS_PER_PARAGRAPH, synthetic_squad


def write_squad_json(examples: Iterable[QAExample], path: str | Path) -> None:
    """Write ``examples`` as a SQuAD JSON file (v1.1, or v2.0 when any example is impossible).

    Articles are grouped by ``title`` and paragraphs by ``context``, both in first-appearance order.
    """
    examples = list(examples)
    articles: dict[str, dict[str, list[dict]]] = {}
    for ex in examples:
        articles.setdefault(ex.title, {}).setdefault(ex.context, []).append(_qa_record(ex))
    data = [
        {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()
    ]
    version = "v2.0" if any(ex.is_impossible for ex in examples) else "1.1"
    Path(path).write_text(json.dumps({"version": version, "data": data}, ensure_ascii=False, indent=1),
                          encoding="utf-8")


def _qa_record(ex: QAExample) -> dict:
    record = {
        "id": ex.id,
        "question": ex.question,
        "answers": [{"text": t, "answer_start": s} for t, s in zip(ex.answers, ex.answer_starts)],
    }
    if ex.is_impossible:
        record["is_impossible"] = True
    return record


def test_same_seed_same_examples_and_other_seed_differs():
    assert synthetic_squad(seed=5, articles=3) == synthetic_squad(seed=5, articles=3)
    assert synthetic_squad(seed=5, articles=3) != synthetic_squad(seed=6, articles=3)


def test_counts_titles_and_unique_ids():
    examples = synthetic_squad(seed=1, articles=5, paragraphs_per_article=3, questions_per_paragraph=4)
    assert len(examples) == 5 * 3 * 4
    assert len({ex.id for ex in examples}) == len(examples)
    assert len({ex.title for ex in examples}) == 5
    assert len({ex.context for ex in examples}) == 5 * 3
    assert Counter(ex.context for ex in examples).most_common(1)[0][1] == 4


def test_every_answer_is_at_its_start_and_occurs_once():
    for ex in synthetic_squad(seed=2, articles=10):
        (answer,), (start,) = ex.answers, ex.answer_starts
        assert ex.context[start:start + len(answer)] == answer
        assert ex.context.count(answer) == 1
        assert not ex.is_impossible


def _relation_of(answer: str):
    return next(r for r in RELATIONS if answer in r.values)


def test_every_question_has_same_type_distractors_for_every_person():
    entities = 5
    for ex in synthetic_squad(seed=3, articles=4, entities_per_paragraph=entities):
        relation = _relation_of(ex.answers[0])
        same_type = [v for v in relation.values if v in ex.context]
        assert len(same_type) == entities
        assert sum(ex.context.count(w) for r in RELATIONS for w in r.values) == entities * RELATIONS_PER_PARAGRAPH


def _exact_match_rate(examples, choose) -> float:
    hits = 0
    for ex in examples:
        relation = _relation_of(ex.answers[0])
        candidates = sorted((ex.context.index(v), v) for v in relation.values if v in ex.context)
        hits += choose([v for _, v in candidates]) == ex.answers[0]
    return hits / len(examples)


def test_type_aware_guessing_scores_chance_only():
    examples = synthetic_squad(seed=4, articles=40)  # 960 questions, 4 people per paragraph
    rng = random.Random(0)
    assert 0.19 < _exact_match_rate(examples, rng.choice) < 0.31
    assert 0.17 < _exact_match_rate(examples, lambda c: c[0]) < 0.33
    assert 0.17 < _exact_match_rate(examples, lambda c: c[-1]) < 0.33


def test_write_squad_json_round_trips_through_the_loader(tmp_path):
    examples = synthetic_squad(seed=7, articles=3)
    path = tmp_path / "synthetic.json"
    write_squad_json(examples, path)
    loaded, report = load_squad(str(path))
    assert loaded == examples
    assert report.summary() == f"synthetic.json: kept {len(examples)}, skipped 0"


def test_titles_support_a_disjoint_article_split():
    train, evaluation = split_by_article(synthetic_squad(seed=8, articles=10), eval_articles=3)
    assert len({ex.title for ex in evaluation}) == 3
    assert not {ex.context for ex in train} & {ex.context for ex in evaluation}


@pytest.mark.parametrize("kwargs, field_name", [
    ({"articles": 0}, "articles"),
    ({"paragraphs_per_article": 0}, "paragraphs_per_article"),
    ({"entities_per_paragraph": 1}, "entities_per_paragraph"),
    ({"entities_per_paragraph": 99}, "entities_per_paragraph"),
    ({"questions_per_paragraph": 13}, "questions_per_paragraph"),
])
def test_bad_arguments_name_the_argument(kwargs, field_name):
    with pytest.raises(ValueError, match=field_name):
        synthetic_squad(**kwargs)
