"""Accuracy and F1 for sentence-pair classification (GLUE conventions: MRPC/QQP report positive-class F1)."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def _as_labels(values: Sequence[int] | torch.Tensor, name: str, num_labels: int) -> torch.Tensor:
    tensor = torch.as_tensor(values).detach().cpu()
    if tensor.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of class indices, got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ValueError(f"{name}: no examples to score; pass at least one prediction/label pair")
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ValueError(f"{name}: expected integer class indices, got dtype {tensor.dtype}; argmax the logits first")
    bad = (tensor < 0) | (tensor >= num_labels)
    if bad.any():
        position = int(bad.nonzero()[0])
        raise ValueError(
            f"{name}: entry {position} is {int(tensor[position])}, outside 0..{num_labels - 1}; "
            f"check num_labels={num_labels} or the label mapping"
        )
    return tensor.long()


def _class_f1(predictions: torch.Tensor, labels: torch.Tensor, cls: int) -> float:
    """F1 of one class in [0, 1]; 0.0 when the class is neither predicted nor present (no true positives)."""
    true_pos = int(((predictions == cls) & (labels == cls)).sum())
    predicted = int((predictions == cls).sum())
    actual = int((labels == cls).sum())
    if true_pos == 0:
        return 0.0
    return 2 * true_pos / (predicted + actual)


def pair_metrics(
    predictions: Sequence[int] | torch.Tensor, labels: Sequence[int] | torch.Tensor, *, num_labels: int
) -> dict:
    """``{"accuracy", "f1", "examples"}`` with scores in 0-100.

    predictions, labels: (N,) class indices in ``0..num_labels-1``. F1 is the F1 of class 1 when
    ``num_labels == 2`` (GLUE's MRPC/QQP convention), otherwise the unweighted mean of per-class F1 over the
    classes that occur in the labels or the predictions (scikit-learn's ``average="macro"``).
    """
    if num_labels < 2:
        raise ValueError(f"num_labels={num_labels} must be >= 2")
    preds = _as_labels(predictions, "predictions", num_labels)
    gold = _as_labels(labels, "labels", num_labels)
    if preds.shape != gold.shape:
        raise ValueError(f"predictions: {preds.shape[0]} entries but labels has {gold.shape[0]}; pass one per example")
    accuracy = 100.0 * float((preds == gold).float().mean())
    if num_labels == 2:
        f1 = _class_f1(preds, gold, 1)
    else:
        classes = torch.cat([preds, gold]).unique().tolist()
        f1 = sum(_class_f1(preds, gold, c) for c in classes) / len(classes)
    return {"accuracy": accuracy, "f1": 100.0 * f1, "examples": int(gold.numel())}
