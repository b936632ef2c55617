"""The batched answer engine of a served cache: a batch of questions answered together.

For a batch of B questions: BM25 retrieves each question's top-K windows (`trainables.serving.retrieval`); their rows
are taken from the cache held in memory (every window's states, tokens, offsets and text, read once at start-up with
each shard's checksum checked); the scorer (`trainables.serving.scorers`) makes logits for every (question, window)
row, the questions' lower layers run once each and the upper layers over all rows in batches; each window's best
span is decoded as evaluation decodes it (``trainables.cache.reader.window_answers``). Each question gets one answer
per retrieved window, best first.
"""
from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from trainables.cache.format import CacheError
from trainables.cache.reader import CachedAnswer, PassageCache, question_ids, question_tensors, window_answers
from trainables.data.features import question_room
from trainables.serving.options import ServeOptions
from trainables.serving.queries import Query, QueryRules
from trainables.serving.retrieval import WindowIndex
from trainables.serving.scorers import load_scorer


class Timer:
    """Wall time per phase, in milliseconds."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[phase] += (time.perf_counter() - start) * 1000


@dataclass(frozen=True)
class Reply:
    """One question's answers."""

    answers: list[CachedAnswer]
    """One per retrieved window, best score first (a window without a valid span last, score -inf)."""
    retrieval_scores: list[float]
    """The BM25 score of each answer's window, in the same order."""
    timing_ms: dict[str, float]
    """The batch's phases (retrieve, read, question and upper, or model, decode), shared by its questions."""


class AnswerEngine:
    """The model, the whole cache in memory and its BM25 index, answering batches of `Query`."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        cache = PassageCache(options.cache, shards_in_memory=1)  # read in plan order below: each shard decoded once
        self.manifest = cache.manifest
        self.scorer = load_scorer(options, cache)
        self.model = self.scorer.model
        self.windows = cache.read(cache.locate(cache.keys()))  # (W rows) in plan order: row i is BM25 document i
        self.index, _ = WindowIndex.open(options.cache, save=False)
        if self.index.windows != len(self.windows.texts):
            raise CacheError(f"cache {options.cache}: its BM25 index has {self.index.windows} windows but the cache "
                             f"{len(self.windows.texts)}; remove {options.cache}/bm25 and start again")
        q_len = self.model.config.max_question_len
        self.rules = QueryRules(options.top_k, options.max_top_k, question_room(q_len), q_len,
                                lambda text: len(question_ids(self.model.tokenizer, text)))

    def answer(self, queries: list[Query]) -> list[Reply]:
        """Each query's answers; the batch's timings in every reply."""
        timer = Timer()
        with timer("retrieve"):
            rows, bm25 = self.index.search([q.question for q in queries], max(q.top_k for q in queries))
            picked = [rows[i, :q.top_k] for i, q in enumerate(queries)]
        owner = torch.tensor([i for i, r in enumerate(picked) for _ in r], dtype=torch.long)
        with timer("read"):
            windows = self.windows.take(torch.from_numpy(np.concatenate(picked)))
        q_len = self.model.config.max_question_len
        tensors = [question_tensors(self.model.tokenizer, q.question, q_len) for q in queries]
        q_ids, q_mask = torch.cat([t[0] for t in tensors]), torch.cat([t[1] for t in tensors])
        with torch.inference_mode():
            start, end = self.scorer.logits(q_ids, q_mask, owner, windows, batch_size=self.options.batch_size,
                                            timing=timer)
        with timer("decode"):
            answers = window_answers(start, end, windows, question_len=q_len, n_best=self.options.n_best,
                                     max_answer_len=self.options.max_answer_len)
        replies, lo = [], 0
        for i, rows_i in enumerate(picked):
            mine = list(zip(answers[lo:lo + len(rows_i)], bm25[i, :len(rows_i)].tolist()))
            lo += len(rows_i)
            mine.sort(key=lambda pair: -pair[0].score)  # stable: ties keep the retrieval order
            replies.append(Reply([a for a, _ in mine], [s for _, s in mine], dict(timer.ms)))
        return replies

    def info(self) -> dict:
        """What is served: the model, its decoupling, the cache and the service's settings."""
        m, config = self.manifest, self.model.config
        state_bytes = self.windows.states.nbytes()
        return {
            "model": self.options.model, "baseline": self.options.baseline, "scorer": self.scorer.kind,
            **config.cache_settings(), "cache_dtype": m.cache_dtype if self.options.baseline is None else None,
            "max_question_len": config.max_question_len, "max_passage_len": m.max_passage_len,
            "doc_stride": m.doc_stride, "cache": self.options.cache, "passages": m.passages, "windows": m.windows,
            "cache_bytes": sum(s.bytes for s in m.shards), "state_bytes_in_memory": state_bytes,
            "retrieval": "bm25", "top_k": self.options.top_k, "max_top_k": self.options.max_top_k,
            "max_batch_size": self.options.max_batch_size, "device": self.options.device,
            "torch_threads": torch.get_num_threads(), "replica_pid": os.getpid(),
        }
