"""The data contract between loaders, the decoupled model, metrics and the cache.

Every task is a *pair* of segments that the lower layers see separately:

- the **question** segment ``[CLS] question [SEP]``, padded/truncated to a fixed ``max_question_len`` (Q);
- the **passage** segment ``passage-window [SEP]``, padded to a fixed ``max_passage_len`` (P).

The upper layers see the concatenation ``[question segment (Q) ; passage segment (P)]``. A position ``j`` in
that *joint* sequence is question token ``j`` when ``j < Q`` and passage token ``j - Q`` otherwise. Span labels
and span logits are in joint coordinates; index 0 (``[CLS]``) is the no-answer position (SQuAD 2.0) and the
label for windows that do not contain the answer.

A passage window depends on the context text alone (never on the question), so ``(passage_id, window)``
is a stable, cacheable unit: ``passage_id`` is a content hash of the context.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


def passage_id_for(text: str) -> str:
    """Stable id of a context: the first 16 hex digits of its sha1 (same text → same id, on any machine)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class QAExample:
    """One extractive-QA question as loaded from SQuAD-format data.

    ``answers``/``answer_starts`` hold every gold answer (SQuAD dev has up to 3); both are empty when
    ``is_impossible`` (SQuAD 2.0). ``answer_starts`` are character offsets into ``context``.
    """

    id: str
    question: str
    context: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]
    title: str = ""
    is_impossible: bool = False

    @property
    def passage_id(self) -> str:
        return passage_id_for(self.context)


@dataclass(frozen=True)
class PassageWindow:
    """One window of a tokenized context, ending in ``[SEP]``; ``len(input_ids) <= max_passage_len``.

    ``offsets[i]`` is the ``(start, end)`` character span of token ``i`` in the context; ``(-1, -1)`` for the
    final ``[SEP]``. Unpadded: padding happens when tensors are built.
    """

    passage_id: str
    window: int
    input_ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]


@dataclass
class QAFeatures:
    """Model-ready tensors for N (question, window) pairs; row ``i`` pairs ``question_ids[i]`` with one window.

    question_ids, question_mask: (N, Q) int64 — ``[CLS] q [SEP]`` then pad, mask 1 on real tokens.
    passage_ids, passage_mask:   (N, P) int64 — window tokens then ``[SEP]`` then pad.
    offsets:                     (N, P, 2) int64 — character offsets into the context, -1 for [SEP]/pad.
    example_index:               (N,) int64 — index into ``examples``.
    window_index:                (N,) int64 — window number within the example's context.
    start_positions, end_positions: (N,) int64 — joint coordinates (Q + token index); 0 when the window holds
                                   no answer or the example is impossible.
    """

    question_ids: torch.Tensor
    question_mask: torch.Tensor
    passage_ids: torch.Tensor
    passage_mask: torch.Tensor
    offsets: torch.Tensor
    example_index: torch.Tensor
    window_index: torch.Tensor
    start_positions: torch.Tensor
    end_positions: torch.Tensor
    examples: list[QAExample] = field(default_factory=list)
    windows: list[PassageWindow] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.question_ids.shape[0])

    @property
    def targets(self) -> dict[str, torch.Tensor]:
        """What a training row is scored against, by the loss's names: the answer's start and end (N,)."""
        return {"start_positions": self.start_positions, "end_positions": self.end_positions}


@dataclass(frozen=True)
class PairExample:
    """One sentence-pair classification example (MRPC/QQP/MNLI/RTE style); ``label`` is a class index."""

    id: str
    sentence1: str
    sentence2: str
    label: int


@dataclass
class PairFeatures:
    """Model-ready tensors for N pairs: sentence1 is the question segment, sentence2 the passage segment.

    question_ids, question_mask: (N, Q) int64; passage_ids, passage_mask: (N, P) int64; labels: (N,) int64.
    """

    question_ids: torch.Tensor
    question_mask: torch.Tensor
    passage_ids: torch.Tensor
    passage_mask: torch.Tensor
    labels: torch.Tensor
    examples: list[PairExample] = field(default_factory=list)
    label_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.question_ids.shape[0])

    @property
    def targets(self) -> dict[str, torch.Tensor]:
        """What a training row is scored against, by the loss's names: its class (N,)."""
        return {"labels": self.labels}


def question_room(max_question_len: int) -> int:
    """Question tokens that fit in a question segment of ``max_question_len``: all but the classifier token and the
    separator."""
    return max_question_len - 2


def question_segments(questions: Sequence[Sequence[int]], tokenizer,
                      max_question_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The question segments of ``questions`` (token ids without special tokens): ``[CLS] q [SEP]``, each question
    cut to `question_room`, padded to ``max_question_len``. Ids (N, Q) and mask (N, Q), int64 (`pad_ids`)."""
    room = question_room(max_question_len)
    framed = [[tokenizer.cls_token_id, *q[:room], tokenizer.sep_token_id] for q in questions]
    return pad_ids(framed, max_question_len, tokenizer.pad_token_id)


def pad_ids(sequences: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, length) int64 ids right-padded with ``pad_id``, and the (N, length) mask of real tokens."""
    ids = np.full((len(sequences), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), length), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        ids[row, :len(sequence)] = sequence
        mask[row, :len(sequence)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def pad_offsets(windows: Sequence[PassageWindow], length: int) -> np.ndarray:
    """(N, length, 2) int64 character offsets of each window's tokens into its context, -1 past the window's end."""
    offsets = np.full((len(windows), length, 2), -1, dtype=np.int64)
    for row, window in enumerate(windows):
        offsets[row, :len(window.offsets)] = window.offsets
    return offsets


MAX_PASSAGE_LEN = 256
"""Default P: window length in tokens including the final [SEP] (with the default Q = 64: 320 tokens jointly)."""
DOC_STRIDE = 128
"""Default overlap in tokens between consecutive windows of a long context (Hugging Face `stride` convention)."""


def check_joint_length(max_question_len: int, max_passage_len: int, positions: int, model: str) -> None:
    """`ValueError` when the joint sequence Q + P needs more positions than the model has: passage positions follow
    the question's (and at split 0 count over both), so a longer window would index past the position table."""
    if max_question_len + max_passage_len > positions:
        raise ValueError(f"max_passage_len={max_passage_len} + max_question_len={max_question_len} = "
                         f"{max_question_len + max_passage_len} positions, beyond the {positions} of model {model}; "
                         f"use a max_passage_len of at most {positions - max_question_len}")
