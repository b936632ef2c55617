"""Turn QA examples into model-ready ``QAFeatures``: question segments, passage windows, joint span labels.

A context is tokenized once, without special tokens, by a *fast* tokenizer that returns character offsets; its
windows hold up to ``max_passage_len - 1`` tokens plus ``[SEP]``. ``doc_stride`` follows the Hugging Face
``stride`` convention: it is the **overlap** in tokens between consecutive windows, so they start
``max_passage_len - 1 - doc_stride`` tokens apart and every answer of up to ``doc_stride + 1`` tokens lies wholly
inside some window. Windows depend on the context alone, so ``(passage_id, window)`` is a cacheable unit and
``offsets`` map every predicted token back to the exact context characters.

Special tokens come from the tokenizer (``cls_token_id``, ``sep_token_id``, ``pad_token_id``), so BERT
(``[CLS]``/``[SEP]``/0) and RoBERTa (``<s>``/``</s>``/1) both work.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

import torch

from trainables.data.errors import LoadReport, problem_line
from trainables.data.features import (
    PassageWindow,
    QAExample,
    QAFeatures,
    pad_ids,
    pad_offsets,
    passage_id_for,
    question_room,
    question_segments,
)

_NO_OFFSET = (-1, -1)


def passage_windows(context: str, tokenizer, *, max_passage_len: int, doc_stride: int) -> list[PassageWindow]:
    """Overlapping windows of ``context``: each up to ``max_passage_len - 1`` tokens then ``sep_token_id``.

    ``doc_stride`` is the overlap between consecutive windows (0 <= doc_stride < max_passage_len - 1).
    An empty context gives one window holding only the separator.
    """
    return windows_by_passage([context], tokenizer, max_passage_len=max_passage_len,
                              doc_stride=doc_stride)[passage_id_for(context)]


def windows_by_passage(contexts: list[str], tokenizer, *, max_passage_len: int,
                       doc_stride: int) -> dict[str, list[PassageWindow]]:
    """``passage_windows`` of each distinct context in one batched tokenizer call, keyed by passage id.

    Keys are in first-appearance order; use this rather than a loop over ``passage_windows`` for many contexts.
    """
    _check_window_args(max_passage_len, doc_stride)
    _check_fast(tokenizer)
    distinct = list({passage_id_for(c): c for c in contexts}.items())
    encoded = _encode(tokenizer, [c for _, c in distinct], offsets=True)
    return {
        pid: _windows(pid, ids, offsets, tokenizer.sep_token_id, max_passage_len, doc_stride)
        for (pid, _), ids, offsets in zip(distinct, encoded["input_ids"], encoded["offset_mapping"])
    }


def build_qa_features(examples: list[QAExample], tokenizer, *, max_question_len: int, max_passage_len: int,
                      doc_stride: int, source: str = "") -> tuple[QAFeatures, LoadReport]:
    """One row per (question, window) of its context; returns the features and a report of kept/skipped examples.

    An empty question is skipped (reported with the example id and field ``question``); over-long ones are truncated
    to ``max_question_len`` and reported in one line (naming the question, or counting them); an answer that no
    window holds wholly is reported on ``answers[0]``.
    ``QAFeatures.examples`` are the kept examples (``example_index`` points into them); ``QAFeatures.windows``
    holds each distinct ``(passage_id, window)`` once, in first-appearance order.
    """
    if max_question_len < 3:
        raise ValueError(f"build_qa_features: max_question_len = {max_question_len}; use at least 3 "
                         "(the classifier token, one question token and the separator)")
    _check_window_args(max_passage_len, doc_stride)
    _check_fast(tokenizer)
    report = LoadReport(source or "examples")
    questions = _question_tokens(examples, tokenizer, max_question_len, report)
    kept = [(ex, q) for ex, q in zip(examples, questions) if q is not None]
    windows = windows_by_passage([ex.context for ex, _ in kept], tokenizer, max_passage_len=max_passage_len,
                                 doc_stride=doc_stride)
    rows = _Rows()
    for example, question in kept:
        _add_rows(rows, example, question, windows[example.passage_id], max_question_len, report)
    report.kept = len(rows.examples)
    all_windows = [w for passage in windows.values() for w in passage]
    return rows.to_features(tokenizer, max_question_len, max_passage_len, all_windows), report


def _check_window_args(max_passage_len: int, doc_stride: int) -> None:
    if max_passage_len < 2:
        raise ValueError(f"max_passage_len = {max_passage_len}; use at least 2 (one token and the separator)")
    if not 0 <= doc_stride < max_passage_len - 1:
        raise ValueError(f"doc_stride = {doc_stride}; it is the overlap between windows, so use 0 to "
                         f"{max_passage_len - 2} (below max_passage_len - 1)")


def _check_fast(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"tokenizer {type(tokenizer).__name__} is not a fast tokenizer; passage windows need "
                         "character offsets: load it with AutoTokenizer.from_pretrained(..., use_fast=True)")


def _encode(tokenizer, texts: list[str], offsets: bool = False) -> dict[str, list]:
    """Token ids (and character offsets) of ``texts`` without special tokens, in one batched call."""
    if not texts:
        return {"input_ids": [], "offset_mapping": []}
    return tokenizer(texts, add_special_tokens=False, return_offsets_mapping=offsets, verbose=False)


def _windows(passage_id: str, ids: list[int], offsets: list[tuple[int, int]], sep_id: int,
             max_passage_len: int, doc_stride: int) -> list[PassageWindow]:
    width = max_passage_len - 1
    starts = [0]
    while starts[-1] + width < len(ids):
        starts.append(starts[-1] + width - doc_stride)
    return [
        PassageWindow(
            passage_id=passage_id,
            window=n,
            input_ids=tuple(ids[start:start + width]) + (sep_id,),
            offsets=tuple(tuple(o) for o in offsets[start:start + width]) + (_NO_OFFSET,),
        )
        for n, start in enumerate(starts)
    ]


def _question_tokens(examples: list[QAExample], tokenizer, max_question_len: int,
                     report: LoadReport) -> list[list[int] | None]:
    """Question token ids (no special tokens) per example, cut to fit; ``None`` for a skipped example. The questions
    cut share one cause and one fix, so they are reported in one line (`_cut_line`)."""
    room = question_room(max_question_len)
    encoded = _encode(tokenizer, [ex.question for ex in examples])["input_ids"]
    questions: list[list[int] | None] = []
    cut: list[tuple[int, str]] = []  # (tokens, example id) per question cut
    for example, ids in zip(examples, encoded):
        if not ids:
            report.skip(problem_line(report.source, example.id, "question",
                                     "is empty; write the question or remove the example"))
            questions.append(None)
            continue
        if len(ids) > room:
            cut.append((len(ids), example.id))
        questions.append(ids[:room])
    if cut:
        report.warn(_cut_line(report.source, cut, max_question_len), examples=len(cut))
    return questions


def _cut_line(source: str, cut: list[tuple[int, str]], max_question_len: int) -> str:
    """One line for every question cut to ``max_question_len``: the question when one was, else how many and the
    longest."""
    room = question_room(max_question_len)
    tokens, example_id = max(cut)
    if len(cut) == 1:
        return problem_line(source, example_id, "question", f"has {tokens} tokens but max_question_len = "
                            f"{max_question_len} fits {room}; truncated: raise max_question_len or shorten the "
                            "question")
    return (f"{source}: {len(cut)} questions have more tokens than max_question_len = {max_question_len} fits "
            f"({room}), the longest {tokens} (example {example_id}); truncated: raise max_question_len or shorten the "
            "questions")


def _add_rows(rows: _Rows, example: QAExample, question: list[int], windows: list[PassageWindow],
              max_question_len: int, report: LoadReport) -> None:
    example_index = len(rows.examples)
    rows.examples.append(example)
    answer = _answer_chars(example)
    found = False
    for window in windows:
        span = _token_span(window, answer) if answer else None
        found = found or span is not None
        start, end = (max_question_len + span[0], max_question_len + span[1]) if span else (0, 0)
        rows.add(question, window, example_index, start, end)
    if answer and not found:
        report.warn(problem_line(report.source, example.id, "answers[0]",
                                 f"= {example.answers[0]!r} is not wholly inside any passage window; labelled "
                                 "as no answer: raise max_passage_len or doc_stride"))


def _answer_chars(example: QAExample) -> tuple[int, int] | None:
    """Character span ``[start, end)`` of the first gold answer; ``None`` when impossible."""
    if example.is_impossible or not example.answers:
        return None
    start = example.answer_starts[0]
    return start, start + len(example.answers[0])


def _token_span(window: PassageWindow, answer: tuple[int, int]) -> tuple[int, int] | None:
    """Window token indices ``(first, last)`` covering ``answer`` chars, or ``None`` unless wholly inside."""
    start_char, end_char = answer
    offsets = window.offsets[:-1]
    if not offsets or offsets[0][0] > start_char or offsets[-1][1] < end_char:
        return None
    # Offsets never decrease along a window, so both ends are binary searches.
    first = bisect_right(offsets, start_char, key=lambda o: o[1])
    last = bisect_left(offsets, end_char, key=lambda o: o[0]) - 1
    return (first, last) if first <= last else None


@dataclass
class _Rows:
    """Unpadded per-row lists, turned into padded tensors once at the end."""

    questions: list[list[int]] = field(default_factory=list)
    windows: list[PassageWindow] = field(default_factory=list)
    example_index: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    examples: list[QAExample] = field(default_factory=list)

    def add(self, question: list[int], window: PassageWindow, example_index: int, start: int, end: int) -> None:
        self.questions.append(question)
        self.windows.append(window)
        self.example_index.append(example_index)
        self.starts.append(start)
        self.ends.append(end)

    def to_features(self, tokenizer, max_question_len: int, max_passage_len: int,
                    distinct_windows: list[PassageWindow]) -> QAFeatures:
        question_ids, question_mask = question_segments(self.questions, tokenizer, max_question_len)
        passage_ids, passage_mask = pad_ids([w.input_ids for w in self.windows], max_passage_len,
                                            tokenizer.pad_token_id)
        return QAFeatures(
            question_ids=question_ids,
            question_mask=question_mask,
            passage_ids=passage_ids,
            passage_mask=passage_mask,
            offsets=torch.from_numpy(pad_offsets(self.windows, max_passage_len)),
            example_index=torch.tensor(self.example_index, dtype=torch.long),
            window_index=torch.tensor([w.window for w in self.windows], dtype=torch.long),
            start_positions=torch.tensor(self.starts, dtype=torch.long),
            end_positions=torch.tensor(self.ends, dtype=torch.long),
            examples=self.examples,
            windows=distinct_windows,
        )
