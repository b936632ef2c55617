"""Token masking of training rows, drawn afresh every step.

A student distilled on a small training set learns the teacher's outputs on those rows and little of the function
behind them (MRPC at k=3: the teacher's training-set logits are matched, held-out agreement stays ~84 %). Masking
random tokens gives every step inputs the teacher has never been asked about; with a live teacher the soft targets
come from the same masked input, so the student imitates the teacher on them (TinyBERT's data augmentation without
its word-replacement model).
"""
from __future__ import annotations

import torch


def mask_tokens(ids: torch.Tensor, attention_mask: torch.Tensor, probability: float, mask_id: int,
                keep_ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``ids`` (B, S) with each real token (``attention_mask`` 1) not in ``keep_ids`` (K,), on the same device, replaced by ``mask_id``
    with ``probability``; special tokens ([CLS], [SEP]) and padding stay. Returns a new (B, S) tensor."""
    if probability <= 0:
        return ids
    draw = torch.rand(ids.shape, generator=generator, device=ids.device)
    maskable = attention_mask.bool() & ~torch.isin(ids, keep_ids)
    return torch.where(maskable & (draw < probability), torch.full_like(ids, mask_id), ids)


def masked_batch(batch: dict[str, torch.Tensor], probability: float, mask_id: int, keep_ids: torch.Tensor,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``batch`` with its question and passage ids masked by `mask_tokens` (labels, masks and index unchanged)."""
    out = dict(batch)
    for part in ("question", "passage"):
        out[f"{part}_ids"] = mask_tokens(batch[f"{part}_ids"], batch[f"{part}_mask"], probability, mask_id, keep_ids,
                                         generator)
    return out
