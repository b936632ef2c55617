"""SQuAD exact match and F1, re-implemented from the official ``evaluate-v1.1.py`` / ``evaluate-v2.0.py``.

Scores are percentages (0-100) averaged over *all* examples given. An example without a prediction scores 0
(the official scripts print "Missing prediction" and skip it; counting it as wrong keeps a truncated
prediction file from looking better than a complete one).
"""
from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from trainables.data.features import QAExample

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """Lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace (official order)."""
    lowered = s.lower()
    no_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    no_articles = _ARTICLES.sub(" ", no_punctuation)
    return " ".join(no_articles.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _token_f1(prediction: str, gold: str, *, empty_agrees: bool) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if empty_agrees and (not pred_tokens or not gold_tokens):
        return float(pred_tokens == gold_tokens)
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 between the normalised strings, in [0, 1].

    When either side normalises to no tokens (a no-answer), F1 is 1.0 if both do and 0.0 otherwise (the
    v2.0 rule). ``squad_v1`` keeps the v1.1 rule (no tokens in common → 0.0, even for two empties) so its
    numbers match the official script on golds such as ".".
    """
    return _token_f1(prediction, gold, empty_agrees=True)


def _check_predictions(predictions: Mapping[str, str]) -> None:
    for example_id, text in predictions.items():
        if not isinstance(text, str):
            raise ValueError(
                f"predictions: example {example_id!r}: field 'text' is {type(text).__name__}, expected str "
                "(use '' for no answer)"
            )


def _check_examples(examples: Sequence[QAExample]) -> None:
    if not examples:
        raise ValueError("examples: no examples to score; pass at least one QAExample")


def _best_over_golds(prediction: str, golds: Iterable[str], *, empty_agrees: bool) -> tuple[float, float]:
    golds = list(golds)
    em = max(exact_match(prediction, g) for g in golds)
    return em, max(_token_f1(prediction, g, empty_agrees=empty_agrees) for g in golds)


def _percent(values: Sequence[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else 0.0


def squad_v1(predictions: Mapping[str, str], examples: Sequence[QAExample]) -> dict:
    """SQuAD v1.1 scores: ``{"exact_match", "f1", "examples"}``; each example takes the max over its golds."""
    _check_examples(examples)
    _check_predictions(predictions)
    ems: list[float] = []
    f1s: list[float] = []
    for example in examples:
        if example.id not in predictions or not example.answers:
            ems.append(0.0)
            f1s.append(0.0)
            continue
        em, f = _best_over_golds(predictions[example.id], example.answers, empty_agrees=False)
        ems.append(em)
        f1s.append(f)
    return {"exact_match": _percent(ems), "f1": _percent(f1s), "examples": len(examples)}


def _v2_golds(example: QAExample) -> list[str]:
    # Official rule: golds that normalise to nothing are dropped; an unanswerable question's only gold is "".
    golds = [] if example.is_impossible else [a for a in example.answers if normalize_answer(a)]
    return golds or [""]


def squad_v2(
    predictions: Mapping[str, str],
    examples: Sequence[QAExample],
    *,
    no_answer_probs: Mapping[str, float] | None = None,
    threshold: float = 1.0,
) -> dict:
    """SQuAD v2.0 scores, overall and split into answerable (HasAns) and unanswerable (NoAns) examples.

    ``no_answer_probs[id] > threshold`` overrides the prediction with "" (the official ``--na-prob-thresh``);
    ids absent from ``no_answer_probs`` have probability 0. A group with no examples reports total 0 and
    scores 0.0 so the keys are always present.
    """
    _check_examples(examples)
    _check_predictions(predictions)
    probs = no_answer_probs or {}
    scores: dict[str, list[list[float]]] = {"all": [[], []], "HasAns": [[], []], "NoAns": [[], []]}
    for example in examples:
        # Grouped by the raw answers, as the official script does, not by the filtered golds.
        has_answer = bool(example.answers) and not example.is_impossible
        if example.id not in predictions:
            em = f = 0.0
        elif probs.get(example.id, 0.0) > threshold:
            em = f = float(not has_answer)
        else:
            em, f = _best_over_golds(predictions[example.id], _v2_golds(example), empty_agrees=True)
        for key in ("all", "HasAns" if has_answer else "NoAns"):
            scores[key][0].append(em)
            scores[key][1].append(f)
    result: dict = {
        "exact_match": _percent(scores["all"][0]),
        "f1": _percent(scores["all"][1]),
        "examples": len(examples),
    }
    for group in ("HasAns", "NoAns"):
        ems, f1s = scores[group]
        result[f"{group}_exact"] = _percent(ems)
        result[f"{group}_f1"] = _percent(f1s)
        result[f"{group}_total"] = len(ems)
    return result
