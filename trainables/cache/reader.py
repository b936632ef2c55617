"""Read passage states back from a passage cache (``decouple cache build``) for evaluation and answering.

The reader never trusts a cache blindly: `PassageCache.check_model` refuses a cache built by another model, split,
ratio, dtype, tokenizer or windowing; every shard's sha256 is checked against the manifest the first time it is
loaded; and `cached_state_provider` compares each cached window's token ids with the evaluation features' before
handing out its states. States come back exactly as `DecoupledModel.encode_passage` returned them (values in the
cache dtype, int8 scales), so ``forward_upper`` dequantizes and decompresses them as it would live ones.

The file layout is defined in ``trainables.cache.format``; this module is the reading half that evaluation, `decouple answer` and
`decouple serve` need.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.cache.format import (
    CacheError,
    Manifest,
    ShardData,
    ShardEntry,
    check_compatible,
    check_shard_file,
    decode_shard,
    model_identity,
    read_manifest,
    read_shard,
    tokenizer_sha256,
)
from trainables.data.features import QAFeatures, question_segments
from trainables.metrics.evaluation import PassageStatesFn
from trainables.metrics.span_decoding import best_window_spans
from trainables.model.decoupled import DecoupledModel, PassageStates

Key = tuple[str, int]  # (passage_id, window)


@dataclass
class CachedWindows:
    """Windows read from a cache, in the order they were asked for (B rows)."""

    states: PassageStates
    """values (B, P, C) in the cache dtype; scale (B, 1, C) fp32 for int8, else None."""
    mask: torch.Tensor
    """(B, P) int64, 1 on the window's valid tokens."""
    input_ids: torch.Tensor
    """(B, P) int64 window token ids (padded)."""
    offsets: torch.Tensor
    """(B, P, 2) int64 character offsets into the passage; -1 for [SEP] and padding."""
    text_starts: list[int]
    """Character offset of ``texts[i]`` in its passage."""
    texts: list[str]
    """The passage characters each window covers."""
    passage_ids: list[str]
    windows: list[int]

    def take(self, rows: torch.Tensor) -> "CachedWindows":
        """The windows at ``rows`` ((B,) int64 indices into these), in that order."""
        picked = rows.tolist()
        scale = None if self.states.scale is None else self.states.scale[rows]
        return CachedWindows(
            states=PassageStates(self.states.values[rows], scale), mask=self.mask[rows], input_ids=self.input_ids[rows],
            offsets=self.offsets[rows], text_starts=[self.text_starts[i] for i in picked],
            texts=[self.texts[i] for i in picked], passage_ids=[self.passage_ids[i] for i in picked],
            windows=[self.windows[i] for i in picked],
        )

    def span_text(self, row: int, char_start: int, char_end: int) -> str:
        """Passage characters [char_start, char_end) of window ``row``."""
        base = self.text_starts[row]
        return self.texts[row][char_start - base:char_end - base]


class PassageCache:
    """A complete cache directory opened for reading; shards are decoded on demand (an LRU of decoded shards)."""

    def __init__(self, cache_dir: str | Path, *, shards_in_memory: int = 2) -> None:
        if shards_in_memory < 1:
            raise ValueError(f"shards_in_memory={shards_in_memory} must be >= 1")
        self.cache_dir = Path(cache_dir)
        self.manifest: Manifest = read_manifest(cache_dir)
        self._shards_in_memory = shards_in_memory
        self._decoded: OrderedDict[int, ShardData] = OrderedDict()
        self._index: dict[Key, tuple[int, int]] | None = None
        self._by_passage: dict[str, list[int]] = {}

    # ---- trust ----------------------------------------------------------------------------------------------------
    def model_overrides(self) -> dict:
        """The cache's split, ratio and dtype, as ``DecoupledModel.from_pretrained(path, **overrides)`` takes them."""
        return self.manifest.cache_settings()

    def check_model(self, model: DecoupledModel, *, max_passage_len: int | None = None,
                    doc_stride: int | None = None) -> None:
        """Raise `CacheError` unless this cache was built by ``model`` (and these window settings, when given)."""
        digest = tokenizer_sha256(model.tokenizer) if model.tokenizer is not None else None
        check_compatible(self.manifest, self.cache_dir, model_identity(model), digest,
                         max_passage_len=max_passage_len, doc_stride=doc_stride)

    # ---- keys -----------------------------------------------------------------------------------------------------
    def keys(self, passage_id: str | None = None) -> list[Key]:
        """Every cached ``(passage_id, window)`` in plan order, or only ``passage_id``'s windows."""
        index = self._key_index()
        if passage_id is None:
            return list(index)
        if passage_id not in self._by_passage:
            raise CacheError(f"cache {self.cache_dir} has no passage {passage_id!r}; check --passage-id "
                             f"({self.manifest.passages} passages cached from {self.manifest.source})")
        return [(passage_id, w) for w in self._by_passage[passage_id]]

    def locate(self, keys: list[Key], *, described_by: Callable[[int], str] | None = None) -> np.ndarray:
        """(n, 2) int64 (shard, row) of each key; `CacheError` naming the first missing key.

        ``described_by(i)`` may name what needed key ``i`` (e.g. an example id) in the error.
        """
        index = self._key_index()
        found = [index.get(key) for key in keys]
        missing = [i for i, where in enumerate(found) if where is None]
        if missing:
            pid, window = keys[missing[0]]
            who = f" ({described_by(missing[0])})" if described_by else ""
            raise CacheError(
                f"cache {self.cache_dir} has no window {window} of passage {pid}{who}, nor {len(missing) - 1} other "
                f"window(s); build the cache from the same data with max_passage_len={self.manifest.max_passage_len}"
                f", doc_stride={self.manifest.doc_stride}"
            )
        return np.array(found, dtype=np.int64).reshape(len(keys), 2)

    # ---- reading --------------------------------------------------------------------------------------------------
    def read(self, locations: np.ndarray) -> CachedWindows:
        """The windows at ``locations`` ((B, 2) shard, row as from `locate`), in that order."""
        b = len(locations)
        p, c = self.manifest.max_passage_len, self.manifest.state_width
        first = self._shard(int(locations[0, 0]))
        states = np.empty((b, p, c), dtype=first.states.dtype)
        scales = None if first.scales is None else np.empty((b, c), dtype=np.float32)
        lengths = np.empty(b, dtype=np.int64)
        input_ids = np.empty((b, p), dtype=np.int64)
        offsets = np.empty((b, p, 2), dtype=np.int64)
        text_starts, texts, passage_ids, windows = [0] * b, [""] * b, [""] * b, [0] * b
        for shard_no in np.unique(locations[:, 0]):
            shard = self._shard(int(shard_no))
            out = np.flatnonzero(locations[:, 0] == shard_no)
            rows = locations[out, 1]
            states[out], lengths[out] = shard.states[rows], shard.lengths[rows]
            input_ids[out], offsets[out] = shard.input_ids[rows], shard.offsets[rows]
            if scales is not None:
                scales[out] = shard.scales[rows]
            for o, r in zip(out.tolist(), rows.tolist()):
                text_starts[o], texts[o] = int(shard.text_starts[r]), shard.texts[r]
                passage_ids[o], windows[o] = shard.passage_ids[r], int(shard.windows[r])
        mask = (np.arange(p)[None, :] < lengths[:, None]).astype(np.int64)
        scale = None if scales is None else torch.from_numpy(scales).unsqueeze(1)
        return CachedWindows(
            states=PassageStates(torch.from_numpy(states), scale), mask=torch.from_numpy(mask),
            input_ids=torch.from_numpy(input_ids), offsets=torch.from_numpy(offsets), text_starts=text_starts,
            texts=texts, passage_ids=passage_ids, windows=windows,
        )

    # ---- internals ------------------------------------------------------------------------------------------------
    def _key_index(self) -> dict[Key, tuple[int, int]]:
        """(passage_id, window) -> (shard, row), read from the key columns of every shard once."""
        if self._index is not None:
            return self._index
        index: dict[Key, tuple[int, int]] = {}
        for shard_no, entry in enumerate(self.manifest.shards):
            table = read_shard(self.cache_dir, entry, columns=["passage_id", "window"])
            for row, (pid, window) in enumerate(zip(table.column("passage_id").to_pylist(),
                                                    table.column("window").to_pylist())):
                index[(pid, window)] = (shard_no, row)
                self._by_passage.setdefault(pid, []).append(window)
        self._index = index
        return index

    def _shard(self, shard_no: int) -> ShardData:
        if shard_no in self._decoded:
            self._decoded.move_to_end(shard_no)
            return self._decoded[shard_no]
        shard = self._decode(self.manifest.shards[shard_no])
        self._decoded[shard_no] = shard
        while len(self._decoded) > self._shards_in_memory:
            self._decoded.popitem(last=False)
        return shard

    def _decode(self, entry: ShardEntry) -> ShardData:
        problem = check_shard_file(self.cache_dir, entry)
        if problem:
            raise CacheError(problem)
        return decode_shard(read_shard(self.cache_dir, entry))


def cached_state_provider(cache_dir: str | Path, model: DecoupledModel, features: QAFeatures, *,
                          doc_stride: int | None = None, shards_in_memory: int = 2) -> PassageStatesFn:
    """The ``passage_states`` argument of ``trainables.metrics.evaluation.evaluate_qa``, reading states from a cache.

    Refuses (`CacheError`) a cache not built by ``model`` or with another ``max_passage_len`` (taken from the
    features) or ``doc_stride`` (when given), and one that lacks a window the features use. The returned callable
    maps feature-row indices (B,) to ``(PassageStates, passage_mask (B, P))`` and raises if a cached window's
    tokens differ from the features' (other text, tokenizer or windowing).
    """
    cache = PassageCache(cache_dir, shards_in_memory=shards_in_memory)
    cache.check_model(model, max_passage_len=features.passage_ids.shape[1], doc_stride=doc_stride)
    example_index = features.example_index.tolist()
    keys = [(features.examples[e].passage_id, w) for e, w in zip(example_index, features.window_index.tolist())]
    locations = cache.locate(keys, described_by=lambda i: f"example {features.examples[example_index[i]].id}")

    def passage_states(rows: torch.Tensor) -> tuple[PassageStates, torch.Tensor]:
        windows = cache.read(locations[rows.cpu().numpy()])
        differs = (windows.input_ids != features.passage_ids[rows].cpu()).any(dim=1)
        if bool(differs.any()):
            i = int(differs.nonzero()[0, 0])
            example = features.examples[example_index[int(rows[i])]]
            raise CacheError(
                f"cache {cache_dir}: window {windows.windows[i]} of passage {windows.passage_ids[i]} (example "
                f"{example.id}) holds other tokens than the evaluation features; the cache was built from other "
                "text, tokenizer or windowing: rebuild it"
            )
        return windows.states, windows.mask

    return passage_states


@dataclass(frozen=True)
class CachedAnswer:
    """The best span over the searched windows."""

    text: str
    """The answer: the passage characters [char_start, char_end); "" when no window had a valid span."""
    score: float
    """Start logit + end logit of the span (-inf when none)."""
    passage_id: str
    window: int
    char_start: int
    char_end: int


def question_ids(tokenizer, question: str) -> list[int]:
    """The question's token ids, without special tokens and uncut."""
    return tokenizer(question, add_special_tokens=False, verbose=False)["input_ids"]


def question_tensors(tokenizer, question: str, max_question_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``question``'s segment as training frames it (`trainables.data.features.question_segments`): ids (1, Q) and
    mask (1, Q), int64."""
    return question_segments([question_ids(tokenizer, question)], tokenizer, max_question_len)


def answer_from_cache(model: DecoupledModel, cache: PassageCache, question: str, *, passage_id: str | None = None,
                      batch_size: int = 64, n_best: int = 20, max_answer_len: int = 30,
                      device: str | torch.device = "cpu") -> CachedAnswer:
    """Best answer span to ``question`` among the cached windows (all, or ``passage_id``'s).

    The question runs through the lower layers once; each batch of cached windows goes through ``forward_upper``
    and is scored like evaluation does (``best_window_spans`` over tokens with a character offset). The caller
    checks the cache against the model (`PassageCache.check_model`).
    """
    keys = cache.keys(passage_id)
    locations = cache.locate(keys)
    q_ids, q_mask = question_tensors(model.tokenizer, question, model.config.max_question_len)
    q_len = q_ids.shape[1]
    best = CachedAnswer("", float("-inf"), keys[0][0], keys[0][1], -1, -1)
    was_training = model.training
    model.to(device).eval()
    with torch.inference_mode():
        question_states = model.encode_question(q_ids.to(device), q_mask.to(device))  # (1, Q, d)
        for lo in range(0, len(keys), batch_size):
            windows = cache.read(locations[lo:lo + batch_size])
            b = len(windows.texts)
            out = model.forward_upper(question_states.expand(b, -1, -1), q_mask.to(device).expand(b, -1),
                                      windows.states.to(device), windows.mask.to(device))
            for candidate in window_answers(out.start_logits, out.end_logits, windows, question_len=q_len,
                                            n_best=n_best, max_answer_len=max_answer_len):
                if candidate.score > best.score:
                    best = candidate
    model.train(was_training)
    return best


def window_answers(start_logits: torch.Tensor, end_logits: torch.Tensor, windows: CachedWindows, *,
                   question_len: int, n_best: int = 20, max_answer_len: int = 30) -> list[CachedAnswer]:
    """The best span of each window, decoded as evaluation decodes (``best_window_spans`` over the tokens that have a
    character offset): start and end logits (B, Q+P) in joint coordinates (``Q = question_len``) over the B rows of
    ``windows``. A window without a valid span answers "" with score -inf and offsets -1."""
    valid = (windows.offsets[..., 0] >= 0) & (windows.mask > 0)
    scores, starts, ends = best_window_spans(
        start_logits[:, question_len:].float().cpu(), end_logits[:, question_len:].float().cpu(), valid,
        n_best=n_best, max_answer_len=max_answer_len,
    )
    answers = []
    for row, score in enumerate(scores.tolist()):
        where = windows.passage_ids[row], windows.windows[row]
        if score == float("-inf"):
            answers.append(CachedAnswer("", score, *where, -1, -1))
            continue
        char_start = int(windows.offsets[row, starts[row], 0])
        char_end = int(windows.offsets[row, ends[row], 1])
        answers.append(CachedAnswer(windows.span_text(row, char_start, char_end), score, *where, char_start, char_end))
    return answers
