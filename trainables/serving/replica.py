"""One Ray Serve replica of `decouple serve`: the HTTP endpoints over an `AnswerEngine`.

- ``POST /answer`` ``{"question": "...", "top_k": 5}`` -> ``{"answers": [{"text", "score", "passage_id", "window",
  "char_start", "char_end", "retrieval_score"}], "timing_ms": {...}}``, best first; a score is null when the window
  had no valid span. Concurrent requests are answered together (``@serve.batch``, at most ``max_batch_size``, waiting
  at most ``batch_wait_ms`` for more); ``timing_ms`` holds the batch's phases, ``wait`` (this request's time before its
  batch ran) and ``total``; ``batch`` says how many requests its batch answered.
- ``GET /healthz`` -> ``{"status": "ok"}``.
- ``GET /info`` -> the model, split, ratio, dtype, cache size, passages and settings (`AnswerEngine.info`).

A refused request gets HTTP 400 and ``{"error": "<one line>"}`` (`trainables.serving.queries`); an unknown path 404, a
wrong method 405, a failure while answering 500, each with the same one-line body. The batch runs in a thread, so
the replica keeps taking requests (the next batch fills) while the model works.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from trainables.serving.options import ServeOptions
from trainables.serving.queries import BadRequest, Query, parse_query

ROUTES = {"/answer": "POST", "/healthz": "GET", "/info": "GET"}
logger = logging.getLogger("ray.serve")


class AnswerReplica:
    """Holds the model and the cache (`AnswerEngine`); Serve makes it a deployment (`orchestrator.serve`)."""

    def __init__(self, options: ServeOptions) -> None:
        import torch

        from trainables.serving.engine import AnswerEngine

        torch.set_num_threads(options.cpus_per_replica)
        self.engine = AnswerEngine(options)
        self.answer_batch.set_max_batch_size(options.max_batch_size)
        self.answer_batch.set_batch_wait_timeout_s(options.batch_wait_ms / 1000)

    async def __call__(self, request: Request) -> JSONResponse:
        path = request.url.path.rstrip("/") or "/"
        if path not in ROUTES:
            return _error(404, f"no endpoint {path}; use {', '.join(f'{m} {p}' for p, m in ROUTES.items())}")
        if request.method != ROUTES[path]:
            return _error(405, f"{path} takes {ROUTES[path]}, not {request.method}")
        if path == "/healthz":
            return JSONResponse({"status": "ok"})
        if path == "/info":
            return JSONResponse(self.engine.info())
        arrived = time.perf_counter()
        try:
            query = parse_query(await request.body(), self.engine.rules)
        except BadRequest as err:
            return _error(400, str(err))
        try:
            return JSONResponse(await self.answer_batch((query, arrived)))
        except Exception as err:  # the batch failed: every request in it says so, in one line
            logger.exception("answering failed")
            return _error(500, f"answering failed: {type(err).__name__}: {_first_line(err)}")

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)  # set from the options in __init__
    async def answer_batch(self, requests: list[tuple[Query, float]]) -> list[dict]:
        started = time.perf_counter()
        replies = await asyncio.to_thread(self.engine.answer, [query for query, _ in requests])
        total = (time.perf_counter() - started) * 1000
        return [_reply_json(reply, wait=(started - arrived) * 1000, batch=len(requests), total=total)
                for (_, arrived), reply in zip(requests, replies)]


def _reply_json(reply, *, wait: float, batch: int, total: float) -> dict:
    answers = [{"text": a.text, "score": a.score if math.isfinite(a.score) else None, "passage_id": a.passage_id,
                "window": a.window, "char_start": a.char_start, "char_end": a.char_end, "retrieval_score": s}
               for a, s in zip(reply.answers, reply.retrieval_scores)]
    timing = {k: round(v, 3) for k, v in reply.timing_ms.items()}
    return {"answers": answers, "timing_ms": {**timing, "wait": round(wait, 3), "total": round(wait + total, 3)},
            "batch": batch}


def _error(status: int, line: str) -> JSONResponse:
    return JSONResponse({"error": line}, status_code=status)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else ""
