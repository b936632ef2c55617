"""Training objectives: task cross-entropy, Hinton distillation, and feature losses against a teacher.

Pure functions of tensors. Span logits are in joint coordinates (see `features.py`): an answer can only start or end
at ``[CLS]`` (no answer) or at a real passage token, so every span loss first removes the other positions (question
tokens, padding) with a ``valid`` mask — they then carry no probability mass for the student or the teacher.
Feature losses average over real positions only, so question-side and passage-side padding never contribute.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def span_candidates(question_mask: torch.Tensor, passage_mask: torch.Tensor) -> torch.Tensor:
    """Positions an answer may start/end at: (B, Q), (B, P) masks -> (B, Q+P) bool, [CLS] and real passage tokens."""
    question_side = torch.zeros_like(question_mask, dtype=torch.bool)
    question_side[:, 0] = True
    return torch.cat([question_side, passage_mask.bool()], dim=1)


def joint_mask(question_mask: torch.Tensor, passage_mask: torch.Tensor) -> torch.Tensor:
    """Real tokens of the joint sequence: (B, Q), (B, P) -> (B, Q+P) bool."""
    return torch.cat([question_mask, passage_mask], dim=1).bool()


def _masked(logits: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """(B, C) logits as fp32 with invalid classes pushed to the most negative finite value (softmax -> exactly 0)."""
    logits = logits.float()
    if valid is None:
        return logits
    return logits.masked_fill(~valid, torch.finfo(torch.float32).min)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy. logits: (B, C); labels: (B,) int64; valid: (B, C) bool or None (all classes valid)."""
    return F.cross_entropy(_masked(logits, valid), labels)


def distillation_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """T² · KL(softmax(teacher/T) ‖ softmax(student/T)), summed over classes, averaged over the batch.

    student_logits, teacher_logits: (B, C); valid: (B, C) bool or None. The T² keeps the gradient scale of the soft
    term independent of T (Hinton et al. 2015). The teacher side carries no gradient.
    """
    log_student = F.log_softmax(_masked(student_logits, valid) / temperature, dim=-1)
    teacher = F.softmax(_masked(teacher_logits.detach(), valid) / temperature, dim=-1)
    return temperature**2 * F.kl_div(log_student, teacher, reduction="batchmean")


def span_cross_entropy(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
    valid: torch.Tensor,
) -> torch.Tensor:
    """(CE(start) + CE(end)) / 2. logits: (B, T); positions: (B,) joint coordinates; valid: (B, T) bool."""
    return 0.5 * (cross_entropy(start_logits, start_positions, valid) + cross_entropy(end_logits, end_positions, valid))


def span_distillation_kl(
    student_start: torch.Tensor,
    student_end: torch.Tensor,
    teacher_start: torch.Tensor,
    teacher_end: torch.Tensor,
    temperature: float,
    valid: torch.Tensor,
) -> torch.Tensor:
    """Start and end distillation terms averaged: all logits (B, T); valid (B, T) bool."""
    start = distillation_kl(student_start, teacher_start, temperature, valid)
    end = distillation_kl(student_end, teacher_end, temperature, valid)
    return 0.5 * (start + end)


def masked_mse(student: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over real positions. student, target: (B, S, d); mask: (B, S), 1/True on real tokens.

    Averages over (real positions × d), so the value does not depend on how much padding a batch has.
    """
    weights = mask.to(torch.float32).unsqueeze(-1)  # (B, S, 1)
    squared = (student.float() - target.detach().float()).pow(2) * weights
    return squared.sum() / (weights.sum() * student.shape[-1]).clamp_min(1.0)


def relative_mse(student: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error relative to the target's energy over real positions: Σ‖s − t‖² / Σ‖t‖².

    student, target: (B, S, d); mask: (B, S), 1/True on real tokens. 0 is a perfect match and 1 the error of
    predicting zeros, whatever the model's activation scale, so one weight means the same for every model and layer
    (plain MSE of BERT-family hidden states is 0.02–0.4 and grows with depth and width).
    """
    weights = mask.to(torch.float32).unsqueeze(-1)  # (B, S, 1)
    target = target.detach().float()
    error = ((student.float() - target).pow(2) * weights).sum()
    return error / (target.pow(2) * weights).sum().clamp_min(torch.finfo(torch.float32).tiny)


def attention_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) between self-attention distributions, summed over keys, averaged over heads and real
    queries (MiniLM's attention transfer).

    student, teacher: (B, H, S, S) attention probabilities (rows sum to 1 over real keys); mask: (B, S) 1/True on real
    tokens. An MSE of probabilities is ~1/S² of this and vanishes beside a cross-entropy (0.001 against 0.6 for a
    re-split MiniLM on MRPC); the KL is of the order of the task loss.
    """
    queries = mask.to(torch.float32)[:, None, :]  # (B, 1, S)
    log_student = student.float().clamp_min(torch.finfo(torch.float32).tiny).log()
    per_query = F.kl_div(log_student, teacher.detach().float(), reduction="none").sum(-1)  # (B, H, S)
    return (per_query * queries).sum() / (queries.sum() * student.shape[1]).clamp_min(1.0)


def layerwise_representation_loss(
    student_states: Sequence[torch.Tensor],
    teacher_states: Sequence[torch.Tensor],
    split: int,
    mask: torch.Tensor,
) -> torch.Tensor:
    """DeFormer's LRS: `relative_mse` between each upper-layer output and the teacher's same layer, averaged.

    student_states, teacher_states: L+1 tensors (B, S, d) — embeddings, then layers 1..L; the upper layers are
    k+1..L (indices ``split+1 .. L``). mask: (B, S).
    """
    layers = range(split + 1, len(student_states))
    if not layers:
        raise ValueError(f"split={split} leaves no upper layer out of {len(student_states) - 1}; LRS needs split < L")
    return torch.stack([relative_mse(student_states[i], teacher_states[i], mask) for i in layers]).mean()
