"""A decoupled (DeFormer-style) BERT-family encoder with a QA or pair-classification head.

The model is *handed* a Hugging Face task model (BERT, RoBERTa, ELECTRA, MiniLM, ...) and reuses its modules as
they are — embeddings, layers, head — so at split 0 it is numerically that model. Layout (see `features.py`):

    question [CLS] q [SEP] (Q) --embed--> lower k layers --------------------------\
                                                                                  concat -> upper L-k layers -> head
    passage  p [SEP] (P)       --embed--> lower k layers -> compress -> quantize -/  (dequantize, decompress)

Below the split each segment is embedded on its own, token type 0 (question) or 1 (passage), the question at positions
0..Q-1 and the passage at Q.. (or from 0, DeFormer's `passage_positions="restart"`), so the passage side never depends
on the question. At split 0 nothing runs below the split: each segment
contributes only its token embeddings (word + type) and positions, LayerNorm and dropout run on the joint sequence with
positions counted over real tokens — exactly what the original model does on ``[CLS] q [SEP] p [SEP]``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoConfig,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.masking_utils import create_bidirectional_mask

from trainables.model.config import DecoupledConfig
from trainables.model.quantization import dequantize, quantize
from trainables.model.source import resolve_model
from trainables.tasks.registry import task_named

EXTRA_WEIGHTS = "decoupled.safetensors"
# Families whose position ids start after the padding index (fairseq convention).
_PADDING_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "data2vec-text")


@dataclass
class PassageStates:
    """Passage states as a cache stores them.

    values: (B, P, C) fp32 | fp16 | int8, where C = `DecoupledModel.state_width` (d / r).
    scale:  (B, 1, C) fp32 for int8, else None.
    """

    values: torch.Tensor
    scale: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "PassageStates":
        scale = None if self.scale is None else self.scale.to(device, non_blocking=non_blocking)
        return PassageStates(self.values.to(device, non_blocking=non_blocking), scale)

    def nbytes(self) -> int:
        scale = 0 if self.scale is None else self.scale.numel() * self.scale.element_size()
        return self.values.numel() * self.values.element_size() + scale


@dataclass
class DecoupledOutput:
    """start_logits, end_logits: (B, Q+P) for qa; logits: (B, num_labels) for pair.

    hidden_states: L+1 tensors (B, Q+P, d) — embeddings then each layer; below the split the question and passage states
    are concatenated. Filled by `forward` (live) when asked; `forward_upper` alone returns only the upper input and the
    upper layers' outputs (L-k+1 tensors). last_attention: (B, heads, Q+P, Q+P) of the last layer, None when split == L.
    """

    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    last_attention: torch.Tensor | None = None


class DecoupledModel(nn.Module):
    def __init__(self, hf_model: PreTrainedModel, config: DecoupledConfig):
        super().__init__()
        self.hf = hf_model
        self.config = config
        self.tokenizer = None  # set by the loaders when the checkpoint has one; saved beside the weights
        config.check_against(self.num_layers, self.lower_width)
        width, r = self.lower_width, config.compression_ratio
        self.compressor = nn.Linear(width, width // r) if r > 1 else None
        self.decompressor = nn.Linear(width // r, width) if r > 1 else None
        if self.compressor is not None:
            _init_projection_pair(self.compressor, self.decompressor)
        self.cross_position = self.cross_type = None
        if config.cross_embeddings and max(config.trained_splits) > 0:
            self.cross_position = _zero_embedding(self._embeddings.position_embeddings)
            self.cross_type = _zero_embedding(self._embeddings.token_type_embeddings)
        self.pair_features = None
        if config.pair_head == "segments":
            self.pair_features = nn.Linear(4 * self.hidden_size, config.num_labels)
            nn.init.zeros_(self.pair_features.weight)
            nn.init.zeros_(self.pair_features.bias)

    # ---- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_hf(cls, name_or_path: str | Path, config: DecoupledConfig) -> "DecoupledModel":
        """Decouple a plain HF checkpoint (bare encoder, QA or classification head; a missing head starts random)."""
        name_or_path = resolve_model(name_or_path)
        task = task_named(config.task)
        model = cls(task.auto_class().from_pretrained(name_or_path, **task.head_kwargs(config.num_labels)), config)
        model.tokenizer = _maybe_tokenizer(name_or_path)
        return model

    @classmethod
    def from_hf_config(cls, hf_config: PretrainedConfig, config: DecoupledConfig) -> "DecoupledModel":
        """Random weights of the given architecture (tests, shape benchmarks)."""
        task = task_named(config.task)
        hf_config.update(task.head_kwargs(config.num_labels))
        return cls(task.auto_class().from_config(hf_config), config)

    @classmethod
    def from_pretrained(cls, path: str | Path, **overrides) -> "DecoupledModel":
        """Load a directory written by `save_pretrained`; ``overrides`` replace DecoupledConfig fields (e.g. split)."""
        path = resolve_model(path)
        if Path(path).is_dir() and not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no config.json; pass a directory written by save_pretrained or an HF model")
        saved = getattr(AutoConfig.from_pretrained(path), "decoupled", None) or {}
        if saved:  # students saved before passage_positions existed counted passage positions from 0
            saved = {"passage_positions": "restart", **saved}
        config = replace(DecoupledConfig(**saved), **overrides)
        model = cls.from_hf(path, config)
        extra = Path(path) / EXTRA_WEIGHTS
        if extra.is_file() and _same_extras(saved, config):
            missing, unexpected = model.load_state_dict(load_file(extra), strict=False)
            if unexpected:
                raise ValueError(f"{extra}: unexpected tensors {unexpected}; the file does not belong to this model")
        return model

    @contextmanager
    def cut_at(self, split: int) -> Iterator["DecoupledModel"]:
        """Inside the block the model runs split at ``split``, one of its trained splits (an any-split model's
        training step runs it at several); the config is restored after, also on an error."""
        saved = self.config
        self.config = replace(saved, split=split)
        try:
            yield self
        finally:
            self.config = saved

    def save_pretrained(self, path: str | Path) -> None:
        """Write an HF-loadable checkpoint (safetensors) + the decoupling layers + config (+ tokenizer)."""
        path = Path(path)
        self.hf.config.decoupled = self.config.to_dict()
        self.hf.save_pretrained(path, safe_serialization=True)
        extras = {k: v.detach().contiguous() for k, v in self.state_dict().items() if not k.startswith("hf.")}
        if extras:
            save_file(extras, str(path / EXTRA_WEIGHTS), metadata={"format": "pt"})
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(path)

    # ---- properties ---------------------------------------------------------------------------------------------
    @property
    def hf_config(self) -> PretrainedConfig:
        return self.hf.config

    @property
    def _base(self) -> PreTrainedModel:
        return self.hf.base_model

    @property
    def _embeddings(self) -> nn.Module:
        return self._base.embeddings

    @property
    def _layers(self) -> nn.ModuleList:
        return self._base.encoder.layer

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    @property
    def hidden_size(self) -> int:
        return self.hf_config.hidden_size

    @property
    def lower_width(self) -> int:
        """Width of the lower part's output: the embedding size at split 0 (token embeddings only), else d."""
        return self._embeddings.word_embeddings.embedding_dim if self.config.split == 0 else self.hidden_size

    @property
    def state_width(self) -> int:
        """C: width of a cached passage state (lower width / compression ratio)."""
        return self.lower_width // self.config.compression_ratio

    # ---- the two symmetric encoders -----------------------------------------------------------------------------
    def encode_question(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, Q) ids and mask -> (B, Q, width): the question through the lower k layers, never seeing a passage."""
        return self._encode_lower(input_ids, attention_mask, token_type=0)

    def encode_passage(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, compress: bool = True, store: bool = True
    ) -> PassageStates:
        """(B, P) ids and mask -> PassageStates: lower k layers -> compress (d -> d/r) -> quantize to cache_dtype.

        ``compress=False`` keeps the uncompressed lower output; ``store=False`` skips quantization (live path, training).
        """
        states = self._encode_lower(input_ids, attention_mask, token_type=1)
        if compress:
            states = self.compress(states)
        if not store:
            return PassageStates(states)
        values, scale = quantize(states, attention_mask, self.config.cache_dtype)
        return PassageStates(values, scale)

    def compress(self, states: torch.Tensor) -> torch.Tensor:
        """(B, P, width) -> (B, P, width / r); identity when r == 1."""
        return states if self.compressor is None else self.compressor(states)

    def decompress(self, states: torch.Tensor) -> torch.Tensor:
        """(B, P, width / r) -> (B, P, width); identity when r == 1."""
        return states if self.decompressor is None else self.decompressor(states)

    # ---- the joint part -----------------------------------------------------------------------------------------
    def forward_upper(
        self,
        question_states: torch.Tensor,
        question_mask: torch.Tensor,
        passage: PassageStates | torch.Tensor,
        passage_mask: torch.Tensor,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> DecoupledOutput:
        """Run the upper L-k layers and the head on question states (B, Q, width) and passage states.

        ``passage`` is either PassageStates (cached or live; dequantized and decompressed here) or a plain
        (B, P, width) tensor taken as already uncompressed (phase 1 of compression training).
        """
        if isinstance(passage, PassageStates):
            p = self.decompress(dequantize(passage.values, passage.scale, question_states.dtype))
        else:
            p = passage
        hidden = torch.cat([question_states, p], dim=1)  # (B, Q+P, width)
        mask = torch.cat([question_mask, passage_mask], dim=1)  # (B, Q+P)
        hidden = self._enter_upper(hidden, mask, question_states.shape[1])  # (B, T, d)
        states, attention = self._run_layers(hidden, mask, self._layers[self.config.split:], output_attentions)
        out = self._head(states[-1], mask, question_states.shape[1])
        out.hidden_states = tuple(states) if output_hidden_states else None
        out.last_attention = attention
        return out

    def forward(
        self,
        question_ids: torch.Tensor,
        question_mask: torch.Tensor,
        passage_ids: torch.Tensor,
        passage_mask: torch.Tensor,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        lower_cross: float = 0.0,
    ) -> DecoupledOutput:
        """The live path: both encoders then the upper part. Passage states are compressed but not quantized.

        ``lower_cross`` in [0, 1] is a training-time bridge from the joint model to the decoupled one (`split_anneal`):
        the lower layers run on question and passage together, each attention weight across the two segments scaled by
        ``lower_cross`` before renormalising (1 = the joint model over the padded layout, 0 = decoupled: the default,
        and the only value that can be cached).
        """
        if lower_cross > 0 and self.config.split > 0:
            q_states, p_states = self._encode_lower_together(question_ids, question_mask, passage_ids, passage_mask,
                                                             lower_cross)
        else:
            q_states = self._encode_lower(question_ids, question_mask, 0, all_states=True)
            p_states = self._encode_lower(passage_ids, passage_mask, 1, all_states=True)
        p = PassageStates(self.compress(p_states[-1]))
        out = self.forward_upper(q_states[-1], question_mask, p, passage_mask,
                                 output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        if output_hidden_states:
            lower = tuple(torch.cat([q, s], dim=1) for q, s in zip(q_states[:-1], p_states[:-1]))
            out.hidden_states = lower + out.hidden_states
        return out

    # ---- internals ----------------------------------------------------------------------------------------------
    def _encode_lower(self, input_ids, attention_mask, token_type: int, all_states: bool = False):
        """One segment through the embeddings and the lower k layers; (B, S) -> (B, S, width) (or all states)."""
        if self.config.split == 0:
            tokens = self._token_embeddings(input_ids, token_type)  # (B, S, E)
            return [tokens] if all_states else tokens
        hidden = self._segment_embeddings(input_ids, token_type)  # (B, S, d)
        states, _ = self._run_layers(hidden, attention_mask, self._layers[: self.config.split], False)
        return states if all_states else states[-1]

    def _segment_embeddings(self, input_ids: torch.Tensor, token_type: int) -> torch.Tensor:
        """(B, S) ids of one segment -> (B, S, d) embeddings at that segment's positions below the split."""
        after_question = token_type == 1 and self.config.passage_positions == "after_question"
        first = self.config.max_question_len if after_question else 0
        positions = torch.arange(first, first + input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        return self._finish_embeddings(self._token_embeddings(input_ids, token_type), positions)

    def _encode_lower_together(self, question_ids, question_mask, passage_ids, passage_mask, cross: float):
        """Both segments, embedded as `_encode_lower` embeds them, through the lower layers as one sequence whose
        attention across segments is scaled by ``cross`` (additive log ``cross`` on those scores); returns the question
        and passage states of every lower layer, as two lists of (B, Q, d) and (B, P, d)."""
        q_len = question_ids.shape[1]
        hidden = torch.cat([self._segment_embeddings(question_ids, 0), self._segment_embeddings(passage_ids, 1)], dim=1)
        mask = torch.cat([question_mask, passage_mask], dim=1)
        bias = cross_segment_bias(mask, q_len, cross, hidden.dtype)
        states, _ = self._run_layers(hidden, mask, self._layers[: self.config.split], False, attn_mask=bias)
        return [s[:, :q_len] for s in states], [s[:, q_len:] for s in states]

    def _token_embeddings(self, input_ids: torch.Tensor, token_type: int) -> torch.Tensor:
        """word + token-type embeddings (B, S, E): the question-independent part of the embedding layer."""
        emb = self._embeddings
        tokens = emb.word_embeddings(input_ids)
        if getattr(emb, "token_type_embeddings", None) is not None:
            type_id = min(token_type, emb.token_type_embeddings.num_embeddings - 1)
            tokens = tokens + emb.token_type_embeddings(torch.full_like(input_ids, type_id))
        return tokens

    def _finish_embeddings(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Add position embeddings, LayerNorm, dropout (and ELECTRA's projection): (B, S, E) -> (B, S, d)."""
        emb = self._embeddings
        hidden = emb.dropout(emb.LayerNorm(tokens + emb.position_embeddings(positions + self._position_offset)))
        project = getattr(self._base, "embeddings_project", None)
        return hidden if project is None else project(hidden)

    @property
    def _position_offset(self) -> int:
        if self.hf_config.model_type in _PADDING_OFFSET_POSITIONS:
            return self.hf_config.pad_token_id + 1
        return 0

    def _enter_upper(self, hidden: torch.Tensor, mask: torch.Tensor, question_len: int) -> torch.Tensor:
        """At split 0 finish the joint embeddings; above it optionally add the fresh cross embeddings."""
        if self.config.split == 0:
            return self._finish_embeddings(hidden, _joint_positions(mask))
        if self.cross_position is None:
            return hidden
        types = torch.ones_like(mask, dtype=torch.long)
        types[:, :question_len] = 0
        return hidden + self.cross_position(_joint_positions(mask) + self._position_offset) + self.cross_type(types)

    def _run_layers(self, hidden, mask, layers, output_attentions: bool, attn_mask: torch.Tensor | None = None):
        """Run ``layers`` on (B, S, d) with a (B, S) key mask (or the additive (B, 1, S, S) ``attn_mask`` given);
        returns ([input, out_1, ...], last attention | None)."""
        if attn_mask is None:
            attn_mask = create_bidirectional_mask(config=self.hf_config, inputs_embeds=hidden, attention_mask=mask)
        states, attention = [hidden], None
        for i, layer in enumerate(layers):
            if output_attentions and i == len(layers) - 1:
                attention = _attention_probs(layer, hidden, mask)
            hidden = layer(hidden, attn_mask)
            states.append(hidden)
        return states, attention

    def _head(self, sequence: torch.Tensor, mask: torch.Tensor, question_len: int) -> DecoupledOutput:
        """Task head on the final joint states (B, T, d) with their (B, T) mask, the first ``question_len`` the
        question's (the task's own head: `Task.head`)."""
        return DecoupledOutput(**task_named(self.config.task).head(self, sequence, mask, question_len))


def _joint_positions(mask: torch.Tensor) -> torch.Tensor:
    """Positions over the joint sequence counting real tokens only: (B, T) mask -> (B, T) ids (pads repeat)."""
    return (mask.long().cumsum(dim=1) - 1).clamp_min(0)


def cross_segment_bias(mask: torch.Tensor, question_len: int, cross: float, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention bias (B, 1, T, T) over a joint (B, T) key mask whose first ``question_len`` positions are the
    question: 0 within a segment, log ``cross`` across segments, the dtype's minimum on padded keys."""
    floor = torch.finfo(dtype).min
    segment = torch.arange(mask.shape[1], device=mask.device) >= question_len  # (T,) True in the passage
    across = segment[:, None] != segment[None, :]  # (T, T) query and key in different segments
    bias = torch.zeros(across.shape, dtype=dtype, device=mask.device)
    bias = bias.masked_fill(across, math.log(cross) if cross > 0 else floor)
    bias = bias[None, None].expand(mask.shape[0], 1, -1, -1)
    return bias.masked_fill(~mask.bool()[:, None, None, :], floor)


def _attention_probs(layer: nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Self-attention probabilities of a BERT-family layer: (B, S, d), (B, S) -> (B, heads, S, S)."""
    attn = layer.attention.self
    b, s, _ = hidden.shape
    q = attn.query(hidden).view(b, s, -1, attn.attention_head_size).transpose(1, 2)  # (B, H, S, dh)
    k = attn.key(hidden).view(b, s, -1, attn.attention_head_size).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) * attn.attention_head_size**-0.5  # (B, H, S, S)
    scores = scores.masked_fill(~mask.bool()[:, None, None, :], torch.finfo(scores.dtype).min)
    return scores.softmax(dim=-1)


def _init_projection_pair(compressor: nn.Linear, decompressor: nn.Linear) -> None:
    """Start compression as an orthogonal projection: decompress(compress(x)) projects x onto a d/r subspace."""
    basis = torch.empty(compressor.out_features, compressor.in_features)
    nn.init.orthogonal_(basis)
    with torch.no_grad():
        compressor.weight.copy_(basis)
        decompressor.weight.copy_(basis.T)
        compressor.bias.zero_()
        decompressor.bias.zero_()


def _zero_embedding(like: nn.Embedding) -> nn.Embedding:
    """A table of ``like``'s shape at zero: added to the upper part's input, it changes nothing until it trains."""
    fresh = nn.Embedding(like.num_embeddings, like.embedding_dim)
    nn.init.zeros_(fresh.weight)
    return fresh


def _same_extras(saved: dict, config: DecoupledConfig) -> bool:
    """Saved decoupling layers apply only when the overrides kept the settings that shape them, and a split the model
    was trained at."""
    keys = DecoupledConfig.LAYER_SETTINGS
    trained = saved.get("splits") or (saved.get("split", DecoupledConfig.split),)
    return config.split in trained and all(saved.get(k, getattr(DecoupledConfig(), k)) == getattr(config, k)
                                           for k in keys)


def _maybe_tokenizer(name_or_path: str | Path):
    path = Path(name_or_path)
    has_files = path.is_dir() and any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt", "vocab.json"))
    if path.is_dir() and not has_files:
        return None
    try:
        return AutoTokenizer.from_pretrained(str(name_or_path))
    except (OSError, ValueError):
        return None


def load_decoupled(name: str, **overrides) -> "DecoupledModel":
    """The one loader of a saved model for inference (`decouple eval`, `cache build` and its actors, `answer`):
    ``name`` resolved (`resolve_model`) and loaded as a `DecoupledModel` with ``overrides`` applied to its decoupling
    config, and refused in one line (`FileNotFoundError`) when the checkpoint has no tokenizer files."""
    model = DecoupledModel.from_pretrained(name, **overrides)
    if model.tokenizer is None:
        raise FileNotFoundError(f"model {name}: no tokenizer files in the checkpoint; save the tokenizer beside it")
    return model
