"""The two ways a served answer's logits are made over (question, window) rows, and loading either, checked
against the cache before anything is served (`load_scorer`):

- `CachedScorer`: the decoupled model: each question through the lower layers once, then the upper layers over its
  retrieved windows' cached states (dequantized and decompressed by ``forward_upper``), as `decouple answer` does;
- `FullScorer` (``--baseline full``): the full model (split 0: numerically the original model) over the question and
  each retrieved window's tokens, the cost a model without a cache pays for the same retrieval.

Both return start and end logits (R, Q+P) in joint coordinates, so one decoder (``window_answers``) reads both.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from trainables.cache.format import CacheError, tokenizer_sha256
from trainables.cache.reader import CachedWindows, PassageCache
from trainables.model.decoupled import DecoupledModel, load_decoupled
from trainables.serving.options import ServeOptions
from trainables.tasks.registry import task_named

Timing = Callable[[str], AbstractContextManager]
"""``timing(phase)``: a block whose wall time counts towards ``phase`` (`trainables.serving.engine.Timer`)."""


class _Scorer:
    """A model in eval mode on ``device``; subclasses make logits for (question, window) rows."""

    kind: str

    def __init__(self, model: DecoupledModel, device: str) -> None:
        self.model = model.to(device).eval()
        self.device = device


class CachedScorer(_Scorer):
    """The decoupled model over cached passage states."""

    kind = "decoupled"

    def logits(self, q_ids: torch.Tensor, q_mask: torch.Tensor, owner: torch.Tensor, windows: CachedWindows, *,
               batch_size: int, timing: Timing) -> tuple[torch.Tensor, torch.Tensor]:
        """q_ids, q_mask (B, Q) of B questions; owner (R,) the question of each window row; -> start, end (R, Q+P)."""
        q_ids, q_mask = q_ids.to(self.device), q_mask.to(self.device)
        with timing("question"):
            questions = self.model.encode_question(q_ids, q_mask)  # (B, Q, d)
        starts, ends = [], []
        with timing("upper"):
            for lo in range(0, len(owner), batch_size):
                rows = owner[lo:lo + batch_size].to(self.device)
                part = windows.take(torch.arange(lo, lo + len(rows)))
                out = self.model.forward_upper(questions[rows], q_mask[rows], part.states.to(self.device),
                                               part.mask.to(self.device))
                starts.append(out.start_logits)
                ends.append(out.end_logits)
        return torch.cat(starts), torch.cat(ends)


class FullScorer(_Scorer):
    """The full model (split 0) over the question and each window's tokens."""

    kind = "full"

    def logits(self, q_ids: torch.Tensor, q_mask: torch.Tensor, owner: torch.Tensor, windows: CachedWindows, *,
               batch_size: int, timing: Timing) -> tuple[torch.Tensor, torch.Tensor]:
        """As `CachedScorer.logits`, the whole model run per row."""
        starts, ends = [], []
        with timing("model"):
            for lo in range(0, len(owner), batch_size):
                rows = owner[lo:lo + batch_size]
                out = self.model(q_ids[rows].to(self.device), q_mask[rows].to(self.device),
                                 windows.input_ids[lo:lo + len(rows)].to(self.device),
                                 windows.mask[lo:lo + len(rows)].to(self.device))
                starts.append(out.start_logits)
                ends.append(out.end_logits)
        return torch.cat(starts), torch.cat(ends)


Scorer = CachedScorer | FullScorer


def load_scorer(options: ServeOptions, cache: PassageCache) -> Scorer:
    """The scorer ``options`` ask for, its model loaded and checked against ``cache``; `CacheError` (one line) when
    the cache was built by another model (decoupled) or with another tokenizer (full), `ValueError` for a model that
    does not answer questions."""
    if options.baseline == "full":
        model = load_full_model(options.model, cache)
        scorer: Scorer = FullScorer(model, options.device)
    else:
        model = load_decoupled(options.model, **cache.model_overrides())
        cache.check_model(model)
        scorer = CachedScorer(model, options.device)
    if not task_named(model.config.task).extracts_answers:
        raise ValueError(f"model {options.model} is a {model.config.task!r} model; serve answers questions: give a "
                         "QA model")
    return scorer


def load_full_model(name: str, cache: PassageCache) -> DecoupledModel:
    """``name`` whole (split 0, no compression) at the question length of the model that built ``cache``, so both
    scorers see the same shapes; refused unless its tokenizer made the cache's windows and the cache is complete."""
    manifest = cache.manifest
    if not manifest.complete:
        raise CacheError(f"cache {cache.cache_dir} is incomplete ({len(manifest.shards)} of {manifest.num_shards} "
                         "shards); rerun `decouple cache build` with the same arguments to finish it")
    question_len = (manifest.model.get("decoupled") or {}).get("max_question_len")
    overrides = {"split": 0, "splits": (), "compression_ratio": 1, "cross_embeddings": False}
    model = load_decoupled(name, **overrides, **({"max_question_len": question_len} if question_len else {}))
    if tokenizer_sha256(model.tokenizer) != manifest.tokenizer_sha256:
        raise CacheError(f"cache {cache.cache_dir} was built with another tokenizer than model {name}'s; the "
                         "baseline reads the cache's window tokens: give the model the cache's tokenizer")
    return model
