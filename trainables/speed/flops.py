"""Analytic FLOPs of full and decoupled BERT-family encoders: the bound a measured speedup is judged against.

What is counted (one multiply-add = 2 FLOPs, every count multiplied by the batch size):

- per encoder layer on ``n`` tokens of width ``d`` with feed-forward width ``ff``:
  Q/K/V/O projections ``4 · 2·n·d²``, feed-forward ``2 · 2·n·d·ff``,
  attention scores ``Q·Kᵀ`` plus the weighted sum of values ``2 · 2·n²·d``;
- the compression linear ``d → d/r`` on every passage token (live path only) and the decompression linear
  ``d/r → d`` on every passage token (live and cached paths), only when the ratio ``r > 1``.

What is left out, being below ~1% of an encoder layer at BERT shapes: biases, layer norms, GELU, softmax,
residual adds, the embedding look-ups, the task head, and the (de)quantization of cached states.
The full model runs all ``L`` layers on the joint sequence of ``Q + P`` tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a BERT-family encoder that its FLOPs depend on."""

    layers: int
    """Number of encoder layers L."""
    hidden: int
    """Hidden width d."""
    heads: int
    """Attention heads (FLOPs do not depend on it; kept so a shape can build a model)."""
    intermediate: int
    """Feed-forward width ff."""
    vocab: int = 30522
    """Vocabulary size (for building a random model of this shape; not in the FLOPs)."""

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "heads", "intermediate", "vocab"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelShape.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"ModelShape.heads must divide hidden={self.hidden}, got heads={self.heads}")

    @classmethod
    def preset(cls, name: str) -> "ModelShape":
        """One of ``SHAPE_PRESETS`` by name."""
        if name not in SHAPE_PRESETS:
            raise ValueError(f"unknown shape {name!r}: choose one of {', '.join(SHAPE_PRESETS)}")
        return SHAPE_PRESETS[name]

    @classmethod
    def from_hf_config(cls, config: Any) -> "ModelShape":
        """The shape of a ``transformers`` BERT-style config (``num_hidden_layers``, ``hidden_size``, ...)."""
        return cls(
            layers=config.num_hidden_layers,
            hidden=config.hidden_size,
            heads=config.num_attention_heads,
            intermediate=config.intermediate_size,
            vocab=config.vocab_size,
        )


# "tiny" exists for tests and smoke runs of `decouple bench`.
SHAPE_PRESETS: dict[str, ModelShape] = {
    "bert-base": ModelShape(layers=12, hidden=768, heads=12, intermediate=3072),
    "bert-large": ModelShape(layers=24, hidden=1024, heads=16, intermediate=4096),
    "minilm-l6": ModelShape(layers=6, hidden=384, heads=12, intermediate=1536),
    "tiny": ModelShape(layers=2, hidden=32, heads=2, intermediate=64, vocab=30522),
}


def encoder_layer_flops(seq_len: int, hidden: int, intermediate: int, heads: int) -> int:
    """FLOPs of one encoder layer on one sequence of ``seq_len`` tokens (``heads`` does not change the count)."""
    del heads  # d = heads · head_dim, so splitting into heads changes no product size
    projections = 4 * 2 * seq_len * hidden * hidden
    feed_forward = 2 * 2 * seq_len * hidden * intermediate
    attention = 2 * 2 * seq_len * seq_len * hidden
    return projections + feed_forward + attention


def _layers_flops(shape: ModelShape, num_layers: int, seq_len: int) -> int:
    return num_layers * encoder_layer_flops(seq_len, shape.hidden, shape.intermediate, shape.heads)


def _projection_flops(shape: ModelShape, ratio: int, p_len: int) -> int:
    """One ``d → d/r`` (or ``d/r → d``) linear on every passage token; none when ``ratio == 1``."""
    return 0 if ratio == 1 else 2 * p_len * shape.hidden * (shape.hidden // ratio)


def full_model_flops(shape: ModelShape, batch: int, q_len: int, p_len: int) -> int:
    """FLOPs of the original model: all L layers on the joint ``q_len + p_len`` sequence."""
    return batch * _layers_flops(shape, shape.layers, q_len + p_len)


def decoupled_flops(
    shape: ModelShape, split: int, batch: int, q_len: int, p_len: int, ratio: int = 1, cached: bool = False
) -> int:
    """FLOPs of a decoupled model at ``split`` k.

    live:   k layers on Q + k layers on P + compression + decompression + (L-k) layers on Q+P;
    cached: k layers on Q + decompression + (L-k) layers on Q+P (the passage states come from the cache).
    """
    if not 0 <= split <= shape.layers:
        raise ValueError(f"split must be within [0, {shape.layers}], got {split}")
    if ratio < 1 or shape.hidden % ratio:
        raise ValueError(f"ratio must be >= 1 and divide hidden={shape.hidden}, got {ratio}")
    upper = _layers_flops(shape, shape.layers - split, q_len + p_len)
    question = _layers_flops(shape, split, q_len)
    decompress = _projection_flops(shape, ratio, p_len)
    passage = 0 if cached else _layers_flops(shape, split, p_len) + _projection_flops(shape, ratio, p_len)
    return batch * (question + passage + decompress + upper)


def speedup_bound(
    shape: ModelShape, split: int, q_len: int, p_len: int, ratio: int = 1, cached: bool = False
) -> float:
    """The FLOPs bound on the speedup: full FLOPs / decoupled FLOPs (batch size cancels)."""
    return full_model_flops(shape, 1, q_len, p_len) / decoupled_flops(shape, split, 1, q_len, p_len, ratio, cached)
