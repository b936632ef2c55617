"""Optimizer, learning-rate schedule, mixed precision and seeding for the training loop."""
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class OptimSpec:
    """How parameters are updated. Built by the driver from its options (defaults live there)."""

    lr: float
    """Peak AdamW learning rate."""
    weight_decay: float
    """Decoupled weight decay; never applied to biases or LayerNorm weights (any 1-d parameter)."""
    warmup_ratio: float
    """Fraction of a phase's steps spent warming the learning rate up linearly from 0; then linear decay to 0."""
    max_grad_norm: float
    """Gradients are clipped to this global L2 norm; 0 turns clipping off."""
    precision: str
    """fp32, or bf16/fp16 autocast (GPU only; fp16 adds loss scaling)."""

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay} must be >= 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if self.max_grad_norm < 0:
            raise ValueError(f"max_grad_norm={self.max_grad_norm} must be >= 0 (0 turns clipping off)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is unknown; use one of {', '.join(PRECISIONS)}")


def build_optimizer(named_parameters: Iterable[tuple[str, nn.Parameter]], spec: OptimSpec) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, without weight decay on biases and normalisation weights."""
    decay, no_decay = [], []
    for _, param in named_parameters:
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": spec.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=spec.lr, fused=True)


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """Linear warm-up over ``warmup_ratio · total_steps`` steps, then linear decay to 0 at ``total_steps``."""
    warmup = int(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward-pass context for ``precision``: a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (its small exponent range underflows gradients); a pass-through otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
