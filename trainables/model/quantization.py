"""Storage formats for cached passage states.

int8 scheme: symmetric, one fp32 scale per (window, channel), scale = absmax over the window's valid tokens / 127.
Why per channel: BERT-family activations carry a few outlier channels 10-100x larger than the rest, and they are
the same channels on every token (Bondarenko et al. 2021; Dettmers et al. 2022); a per-token scale would spend the
int8 range on them and crush every other channel. Why per window: one scale vector of C floats is amortised over
the window's P tokens (4C/P bytes/token, <1% of the int8 payload at P>=256), and a window is the unit a cache stores.
"""
from __future__ import annotations

import torch

INT8_MAX = 127.0
_STORE = {"fp32": torch.float32, "fp16": torch.float16, "int8": torch.int8}


def quantize(states: torch.Tensor, mask: torch.Tensor, dtype: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode states for storage.

    states: (B, P, C) float; mask: (B, P) 1 on valid tokens. Returns values (B, P, C) in ``dtype`` and, for int8,
    scale (B, 1, C) fp32 (None otherwise). Padding positions are stored as zeros.
    """
    states = states * mask.unsqueeze(-1).to(states.dtype)
    if dtype != "int8":
        return states.to(_STORE[dtype]), None
    scale = states.abs().amax(dim=1, keepdim=True).float().clamp_min(1e-8) / INT8_MAX
    values = torch.round(states.float() / scale).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
    return values, scale


def state_bytes_per_token(width: int, dtype: str, passage_len: int) -> float:
    """Bytes of one passage token's cached state: its ``width`` values in ``dtype`` plus, for int8, its share of the
    window's fp32 scales (4·C/P). Sweeps, reports, `decouple bench` and `decouple cache build` all call this figure
    ``state_bytes_per_token``; a cache's files hold more per token (``disk_bytes_per_token``: padding positions,
    token ids, offsets, text)."""
    values = width * torch.empty((), dtype=_STORE[dtype]).element_size()
    return values + (4 * width / passage_len if dtype == "int8" else 0.0)


def dequantize(values: torch.Tensor, scale: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of `quantize`: values (B, P, C) (+ scale (B, 1, C)) -> (B, P, C) in ``dtype``."""
    if scale is None:
        return values.to(dtype)
    return (values.to(torch.float32) * scale).to(dtype)
