"""Turn start/end logits over (question, window) rows into one answer string per example.

Logits are in joint coordinates (see ``trainables.data.features``): position ``Q + t`` is passage token ``t``; joint
position 0 (``[CLS]``) carries the no-answer score. Each window proposes its best span among its top-n starts ×
top-n ends; an example takes the best proposal over all its windows (the standard BERT/SQuAD post-processing).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from trainables.data.features import QAFeatures

# Rows decoded per vectorised step: bounds the (rows, n_best, n_best) score tensor on large eval sets.
_ROWS_PER_STEP = 4096
_NO_SPAN = -1


@dataclass(frozen=True)
class SpanPrediction:
    """The answer chosen for one example."""

    text: str
    """Exactly ``example.context[char_start:char_end]``; "" for no answer."""
    score: float
    """Start logit + end logit of the span; the null score for a predicted no-answer; -inf when no window had a
    valid span."""
    char_start: int
    """Character offset of the answer's first character in the context; -1 for no answer."""
    char_end: int
    """Character offset one past the answer's last character; -1 for no answer."""


def _check_inputs(start_logits: torch.Tensor, end_logits: torch.Tensor, features: QAFeatures,
                  n_best: int, max_answer_len: int) -> None:
    expected = (len(features), features.question_ids.shape[1] + features.passage_ids.shape[1])
    for name, logits in (("start_logits", start_logits), ("end_logits", end_logits)):
        if tuple(logits.shape) != expected:
            raise ValueError(
                f"{name}: shape {tuple(logits.shape)} does not match the features; expected (N, Q+P) = {expected} "
                "in joint coordinates"
            )
    if n_best < 1:
        raise ValueError(f"n_best={n_best} must be >= 1")
    if max_answer_len < 1:
        raise ValueError(f"max_answer_len={max_answer_len} must be >= 1 (tokens)")
    if len(features) and int(features.example_index.max()) >= len(features.examples):
        raise ValueError(
            f"features.example_index: refers to example {int(features.example_index.max())} but features.examples "
            f"holds {len(features.examples)}; build the features and examples together"
        )


def best_window_spans(
    start: torch.Tensor, end: torch.Tensor, valid: torch.Tensor, *, n_best: int, max_answer_len: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best span of each window among its top-``n_best`` starts × top-``n_best`` ends.

    start, end: (N, P) float logits over passage tokens; valid: (N, P) bool, True where a token may begin or end
    an answer. Returns score (N,) = start + end logit of the best span with start <= end and
    end - start + 1 <= max_answer_len (-inf when the window has none), and its token indices start (N,), end (N,).
    """
    k = min(n_best, start.shape[1])
    start_top, start_idx = start.masked_fill(~valid, float("-inf")).topk(k, dim=1)  # (N, k)
    end_top, end_idx = end.masked_fill(~valid, float("-inf")).topk(k, dim=1)  # (N, k)
    length = end_idx.unsqueeze(1) - start_idx.unsqueeze(2) + 1  # (N, k_start, k_end)
    allowed = (
        (length >= 1)
        & (length <= max_answer_len)
        & valid.gather(1, start_idx).unsqueeze(2)
        & valid.gather(1, end_idx).unsqueeze(1)
    )
    pair_scores = (start_top.unsqueeze(2) + end_top.unsqueeze(1)).masked_fill(~allowed, float("-inf"))
    score, flat = pair_scores.flatten(1).max(dim=1)
    best_start = start_idx.gather(1, (flat // k).unsqueeze(1)).squeeze(1)
    best_end = end_idx.gather(1, (flat % k).unsqueeze(1)).squeeze(1)
    return score, best_start, best_end


def _decode_rows(start_logits: torch.Tensor, end_logits: torch.Tensor, features: QAFeatures,
                 n_best: int, max_answer_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: best span score (N,), its character start (N,) and end (N,)."""
    q_len = features.question_ids.shape[1]
    scores, char_starts, char_ends = [], [], []
    for lo in range(0, len(features), _ROWS_PER_STEP):
        rows = slice(lo, lo + _ROWS_PER_STEP)
        offsets = features.offsets[rows]  # (n, P, 2)
        valid = (offsets[..., 0] >= 0) & (features.passage_mask[rows] > 0)
        score, tok_start, tok_end = best_window_spans(
            start_logits[rows, q_len:], end_logits[rows, q_len:], valid,
            n_best=n_best, max_answer_len=max_answer_len,
        )
        scores.append(score)
        char_starts.append(offsets[:, :, 0].gather(1, tok_start.unsqueeze(1)).squeeze(1))
        char_ends.append(offsets[:, :, 1].gather(1, tok_end.unsqueeze(1)).squeeze(1))
    return torch.cat(scores), torch.cat(char_starts), torch.cat(char_ends)


def _best_row_per_example(row_scores: torch.Tensor, example_index: torch.Tensor, num_examples: int) -> torch.Tensor:
    """(E,) index of the highest-scoring row of each example (the first on ties); N for examples without rows."""
    n = row_scores.shape[0]
    best = torch.full((num_examples,), float("-inf")).scatter_reduce(0, example_index, row_scores, "amax")
    rows = torch.arange(n)
    is_best = row_scores == best[example_index]
    return torch.full((num_examples,), n).scatter_reduce(0, example_index[is_best], rows[is_best], "amin")


def decode_spans(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    features: QAFeatures,
    *,
    n_best: int = 20,
    max_answer_len: int = 30,
    allow_no_answer: bool = False,
) -> tuple[dict[str, SpanPrediction], dict[str, float]]:
    """Best answer span per example across all of its windows.

    start_logits, end_logits: (N, Q+P) in joint coordinates, one row per row of ``features``. Only passage
    tokens with a character offset >= 0 (not ``[SEP]``, padding or the question) can begin or end an answer.
    Returns ``(predictions, null_score_diffs)`` keyed by example id, for every example that has at least one row:
    the diff is (min over the example's windows of ``start[0] + end[0]``) minus the best span score — the value
    SQuAD 2.0 thresholds. With ``allow_no_answer`` the prediction is "" when the null score beats the best span.
    """
    _check_inputs(start_logits, end_logits, features, n_best, max_answer_len)
    start_logits = start_logits.detach().float().cpu()
    end_logits = end_logits.detach().float().cpu()
    example_index = features.example_index.cpu()
    num_examples = len(features.examples)
    row_scores, char_starts, char_ends = _decode_rows(start_logits, end_logits, features, n_best, max_answer_len)
    null_scores = torch.full((num_examples,), float("inf")).scatter_reduce(
        0, example_index, start_logits[:, 0] + end_logits[:, 0], "amin"
    )
    best_rows = _best_row_per_example(row_scores, example_index, num_examples)
    predictions: dict[str, SpanPrediction] = {}
    null_diffs: dict[str, float] = {}
    for example_no in example_index.unique().tolist():
        example = features.examples[example_no]
        row = int(best_rows[example_no])
        score, null = float(row_scores[row]), float(null_scores[example_no])
        null_diffs[example.id] = null - score
        if score == float("-inf") or (allow_no_answer and null > score):
            shown = null if allow_no_answer else score
            predictions[example.id] = SpanPrediction("", shown, _NO_SPAN, _NO_SPAN)
            continue
        start, end = int(char_starts[row]), int(char_ends[row])
        predictions[example.id] = SpanPrediction(example.context[start:end], score, start, end)
    return predictions, null_diffs
