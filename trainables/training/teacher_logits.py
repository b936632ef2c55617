"""The teacher on a worker: the frozen full model (`build_teacher`), its forward pass, and, for logit distillation,
its logits over every training row — computed once before the first epoch (each worker a share, then all-gathered:
`all_teacher_logits`) or loaded from the file the first run of a teacher and data wrote (`cached_teacher_logits`,
`save_teacher_logits`), so a distillation step costs what a plain fine-tuning step costs."""
from __future__ import annotations

import io
import math

import torch
import torch.distributed as dist

from trainables import storage
from trainables.model.decoupled import DecoupledModel, DecoupledOutput
from trainables.tasks.registry import task_named
from trainables.training.config import LoopConfig
from trainables.training.optim import autocast
from trainables.training.task_data import Rows


def build_teacher(cfg: LoopConfig, num_labels: int) -> DecoupledModel:
    """The frozen full teacher (split 0) in eval mode."""
    teacher = DecoupledModel.from_pretrained(cfg.teacher_path, split=0, compression_ratio=1, cross_embeddings=False,
                                             task=cfg.decoupled.task, num_labels=num_labels)
    teacher.eval()
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher


def task_logits(out: DecoupledOutput) -> torch.Tensor:
    """Task logits as one tensor: (B, 2, T) start/end for QA, (B, C) for pairs."""
    if out.start_logits is not None:
        return torch.stack([out.start_logits, out.end_logits], dim=1)
    return out.logits


def teacher_forward(teacher: DecoupledModel, batch: dict, hidden: bool, attention: bool) -> DecoupledOutput:
    """The teacher on a batch of rows (question and passage ids and masks), with the states the losses ask for."""
    return teacher(batch["question_ids"], batch["question_mask"], batch["passage_ids"], batch["passage_mask"],
                   output_hidden_states=hidden, output_attentions=attention)


def cached_teacher_logits(location: str | None, rows: Rows, device: torch.device) -> torch.Tensor | None:
    """The logits kept at ``location`` when they exist and fit ``rows`` (one per training row), else None."""
    if location is None or not storage.exists(location):
        return None
    logits = torch.load(io.BytesIO(storage.read_bytes(location)), map_location=device, weights_only=True)
    return logits if logits.shape[0] == len(rows) else None


def save_teacher_logits(location: str, logits: torch.Tensor) -> None:
    """Keep ``logits`` at ``location`` (a local path or a bucket URI) for later runs of the same teacher and data."""
    buffer = io.BytesIO()
    torch.save(logits.cpu(), buffer)
    storage.write_bytes(location, buffer.getvalue())


@torch.no_grad()
def all_teacher_logits(teacher: DecoupledModel, rows: Rows, cfg: LoopConfig, rank: int, world_size: int,
                       device: torch.device) -> torch.Tensor:
    """Teacher logits of every training row, (N, 2, T) or (N, C): each worker computes a share, then all-gather."""
    share = math.ceil(len(rows) / world_size)
    lo, hi = min(len(rows), rank * share), min(len(rows), (rank + 1) * share)
    chunks = []
    for start in range(lo, hi, cfg.optim.eval_batch_size):
        batch = {k: v[start: min(hi, start + cfg.optim.eval_batch_size)].to(device) for k, v in rows.tensors.items()}
        with autocast(cfg.optim.precision, device):
            chunks.append(task_logits(teacher_forward(teacher, batch, False, False)).float())
    local = torch.cat(chunks) if chunks else torch.empty(0, device=device)
    if world_size == 1:
        return local
    joint_len = rows.tensors["question_ids"].shape[1] + rows.tensors["passage_ids"].shape[1]
    shape = task_named(cfg.decoupled.task).logit_shape(joint_len, teacher.config.num_labels)
    padded = torch.zeros((share, *shape), device=device)
    padded[: local.shape[0]] = local.reshape(-1, *shape)
    gathered = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat(gathered)[: len(rows)]
