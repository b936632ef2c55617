"""The one evaluation loop: batched inference of a `DecoupledModel`, span decoding and scoring.

Used by ``decouple eval``, by per-epoch evaluation during training and by evaluation from a passage cache, so all
three compute their numbers the same way; each task's `evaluate` (`trainables.tasks`) calls its function here. The
model is taken as it comes (an `nn.Module` with the `DecoupledModel` methods), not imported: the model looks its task
up, and the task scores here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from trainables.data.features import PairFeatures, QAFeatures
from trainables.metrics.pairs import pair_metrics
from trainables.metrics.span_decoding import decode_spans
from trainables.metrics.squad import squad_v1, squad_v2

# (row indices (B,) int64) -> (`PassageStates` for those rows, passage mask (B, P))
PassageStatesFn = Callable[[torch.Tensor], tuple[object, torch.Tensor]]


def _check_call(model: nn.Module, features, task: str, batch_size: int) -> None:
    if model.config.task != task:
        raise ValueError(f"model: config.task is {model.config.task!r}, this evaluation needs {task!r}; use "
                         f"task_named({model.config.task!r}).evaluate")
    if len(features) == 0:
        raise ValueError("features: no rows to evaluate; check the data file and the loader's kept/skipped counts")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")


@contextmanager
def _eval_mode(model: nn.Module, device: str | torch.device) -> Iterator[None]:
    """Eval mode and no autograd for the duration; the caller's train/eval mode is restored afterwards."""
    was_training = model.training
    model.to(device)
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _batches(n: int, batch_size: int) -> Iterator[torch.Tensor]:
    for lo in range(0, n, batch_size):
        yield torch.arange(lo, min(lo + batch_size, n))


def _cached_output(
    model: nn.Module, features: QAFeatures, rows: torch.Tensor, device, passage_states: PassageStatesFn
):
    states, passage_mask = passage_states(rows)
    expected = (len(rows), features.passage_ids.shape[1])
    if tuple(passage_mask.shape) != expected:
        raise ValueError(
            f"passage_states: returned a passage mask of shape {tuple(passage_mask.shape)} for rows "
            f"{int(rows[0])}..{int(rows[-1])}, expected {expected}; the cache must hold the features' windows"
        )
    question_mask = features.question_mask[rows].to(device)
    question = model.encode_question(features.question_ids[rows].to(device), question_mask)
    return model.forward_upper(question, question_mask, states.to(device), passage_mask.to(device))


def _live_output(model: nn.Module, features: QAFeatures | PairFeatures, rows: torch.Tensor, device):
    """The model's output on ``rows``, passages encoded now. A student that stores its passage states below fp32
    (``cache_dtype`` fp16/int8) is scored through that storage, as it answers from its cache: the scores a sweep
    records for it are the served model's, not those of fp32 states that are never served."""
    question_ids, question_mask = features.question_ids[rows].to(device), features.question_mask[rows].to(device)
    passage_ids, passage_mask = features.passage_ids[rows].to(device), features.passage_mask[rows].to(device)
    if model.config.split == 0 or model.config.cache_dtype == "fp32":
        return model(question_ids, question_mask, passage_ids, passage_mask)
    question = model.encode_question(question_ids, question_mask)
    return model.forward_upper(question, question_mask, model.encode_passage(passage_ids, passage_mask), passage_mask)


def predict_qa_logits(
    model: nn.Module,
    features: QAFeatures,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    passage_states: PassageStatesFn | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end logits (N, Q+P) fp32 on the CPU for every row of ``features``, in row order.

    ``passage_states`` (row indices -> (PassageStates, passage mask)) replaces the live passage encoder with cached
    states for those rows; the question is still encoded live. ``progress`` is called with the number of rows of
    each batch once it is done.
    """
    _check_call(model, features, "qa", batch_size)
    starts, ends = [], []
    with _eval_mode(model, device):
        for rows in _batches(len(features), batch_size):
            if passage_states is None:
                out = _live_output(model, features, rows, device)
            else:
                out = _cached_output(model, features, rows, device, passage_states)
            starts.append(out.start_logits.float().cpu())
            ends.append(out.end_logits.float().cpu())
            if progress is not None:
                progress(len(rows))
    return torch.cat(starts), torch.cat(ends)


def evaluate_qa(
    model: nn.Module,
    features: QAFeatures,
    *,
    batch_size: int = 32,
    version_2: bool = False,
    device: str | torch.device = "cpu",
    passage_states: PassageStatesFn | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict, dict[str, str]]:
    """SQuAD scores of ``model`` on ``features`` and its answer text per example id.

    ``version_2`` allows "no answer" predictions and reports the v2.0 HasAns/NoAns breakdown; otherwise v1.1
    exact match / F1. Scores cover every example in ``features.examples``. ``progress``: see `predict_qa_logits`.
    """
    start_logits, end_logits = predict_qa_logits(
        model, features, batch_size=batch_size, device=device, passage_states=passage_states, progress=progress
    )
    spans, _ = decode_spans(start_logits, end_logits, features, allow_no_answer=version_2)
    predictions = {example_id: span.text for example_id, span in spans.items()}
    score = squad_v2 if version_2 else squad_v1
    return score(predictions, features.examples), predictions


def evaluate_pairs(
    model: nn.Module, features: PairFeatures, *, batch_size: int = 32, device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
) -> tuple[dict, list[int]]:
    """Accuracy / F1 of ``model`` on ``features`` and the predicted class of every row, in row order.
    ``progress`` is called with the number of rows of each batch once it is done."""
    _check_call(model, features, "pair", batch_size)
    predicted = []
    with _eval_mode(model, device):
        for rows in _batches(len(features), batch_size):
            predicted.append(_live_output(model, features, rows, device).logits.argmax(dim=-1).cpu())
            if progress is not None:
                progress(len(rows))
    predictions = torch.cat(predicted)
    metrics = pair_metrics(predictions, features.labels, num_labels=model.config.num_labels)
    return metrics, predictions.tolist()
