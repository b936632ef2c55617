"""The student's loss on one batch, mixed from the config as torchtune's KD recipe mixes it in its ``_loss_step``:
(1−ρ)·task + ρ·KD (ρ = kd_ratio) plus the weighted feature losses (last-layer hidden states, last-layer attention,
DeFormer's LRS) against a frozen teacher; in compression phase 1, the reconstruction of the uncompressed passage
states alone. The terms themselves are the pure functions of `trainables.training.losses`."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from trainables.model.decoupled import DecoupledModel, DecoupledOutput
from trainables.training.config import DistillSpec
from trainables.training.losses import (
    attention_kl,
    cross_entropy,
    distillation_kl,
    joint_mask,
    layerwise_representation_loss,
    masked_mse,
    relative_mse,
    span_candidates,
    span_cross_entropy,
    span_distillation_kl,
)
from trainables.training.teacher_logits import task_logits

TERMS = ("loss", "ce", "kd", "hidden", "attention", "lrs", "reconstruction")
"""Loss terms in a fixed order, so every worker sums the same vector in the all-reduce."""
Terms = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LossStep:
    """The loss of one batch for a run's `DistillSpec` with the student cut at ``split``; ``uses_teacher`` says whether
    a teacher term is on at all."""

    distill: DistillSpec
    split: int
    uses_teacher: bool

    def reconstruction(self, model: torch.nn.Module, batch: dict) -> Terms:
        """Phase 1: MSE between the decompressed compressed passage states and the uncompressed ones."""
        out = model(batch, reconstruct=True)
        loss = masked_mse(out["reconstructed"], out["target"], batch["passage_mask"])
        return {"loss": loss, "reconstruction": loss}

    def task(self, model: torch.nn.Module, batch: dict, teacher: DecoupledModel | None,
             teacher_logits: torch.Tensor | None, teacher_forward: Callable[..., DecoupledOutput],
             lower_cross: float = 0.0) -> Terms:
        """Task loss, plus distillation and feature losses for students; ``loss`` is their weighted sum. The teacher
        runs live (``teacher`` set, through ``teacher_forward``) or its logits are looked up by row index. The student
        runs with its lower layers' attention across segments weighted by ``lower_cross`` (`split_anneal`)."""
        d = self.distill
        live_teacher = teacher is not None
        need_hidden = live_teacher and (d.hidden_weight > 0 or d.lrs_weight > 0)
        need_attention = live_teacher and d.attention_weight > 0
        out = model(batch, hidden=need_hidden, attention=need_attention, lower_cross=lower_cross, split=self.split)
        valid = span_candidates(batch["question_mask"], batch["passage_mask"]) if out.logits is None else None
        terms = {"ce": hard_loss(out, batch, valid)}
        if not self.uses_teacher:
            return {"loss": terms["ce"], **terms}
        teacher_out = None
        if live_teacher:
            with torch.no_grad():
                teacher_out = teacher_forward(teacher, batch, need_hidden, need_attention)
        loss = (1 - d.kd_ratio) * terms["ce"]
        if d.kd_ratio > 0:
            target = teacher_logits[batch["index"]] if teacher_out is None else task_logits(teacher_out)
            terms["kd"] = soft_loss(out, target, valid, d.kd_temperature)
            loss = loss + d.kd_ratio * terms["kd"]
        if teacher_out is not None:
            features = self.feature_terms(out, teacher_out, batch)
            terms.update(features)
            loss = loss + sum(getattr(d, f"{name}_weight") * value for name, value in features.items())
        return {"loss": loss, **terms}

    def feature_terms(self, out: DecoupledOutput, teacher: DecoupledOutput, batch: dict) -> Terms:
        d, mask = self.distill, joint_mask(batch["question_mask"], batch["passage_mask"])
        terms = {}
        if d.hidden_weight > 0:
            terms["hidden"] = relative_mse(out.hidden_states[-1], teacher.hidden_states[-1], mask)
        if d.attention_weight > 0:
            terms["attention"] = attention_kl(out.last_attention, teacher.last_attention, mask)
        if d.lrs_weight > 0:
            terms["lrs"] = layerwise_representation_loss(out.hidden_states, teacher.hidden_states, self.split, mask)
        return terms

    def shares(self, means: dict[str, float]) -> dict[str, float]:
        """Each weighted term's part of an epoch's mean loss, in percent (``share_kd`` = 100·ρ·kd / loss): which term
        does the work. Empty without a teacher."""
        d, total = self.distill, means.get("train_loss", 0.0)
        if not self.uses_teacher or total <= 0:
            return {}
        weights = {"ce": 1 - d.kd_ratio, "kd": d.kd_ratio, "hidden": d.hidden_weight, "attention": d.attention_weight,
                   "lrs": d.lrs_weight}
        return {f"share_{name}": 100 * w * means[f"train_{name}"] / total for name, w in weights.items()
                if f"train_{name}" in means}


def hard_loss(out: DecoupledOutput, batch: dict, valid: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy against the labels: span start/end (QA, over ``valid`` positions) or the class (pairs)."""
    if out.logits is not None:
        return cross_entropy(out.logits, batch["labels"])
    return span_cross_entropy(out.start_logits, out.end_logits, batch["start_positions"], batch["end_positions"],
                              valid)


def soft_loss(out: DecoupledOutput, target: torch.Tensor, valid: torch.Tensor | None,
              temperature: float) -> torch.Tensor:
    """T²·KL against teacher logits ``target``: (B, 2, T) start/end for QA, (B, C) for pairs."""
    if out.logits is not None:
        return distillation_kl(out.logits, target, temperature)
    return span_distillation_kl(out.start_logits, out.end_logits, target[:, 0], target[:, 1], temperature, valid)
