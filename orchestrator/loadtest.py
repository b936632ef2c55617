"""`decouple loadtest`: a bounded load of questions sent to a served model (`decouple serve`), and what it measured.

``--concurrency`` clients each send one request at a time, the questions in turn, until ``--requests`` were sent or
``--max-seconds`` passed, whichever comes first; a request unanswered after ``--timeout-s`` counts as an error, so the
run always ends by itself. Before the load, ``GET /info`` says what is served (and that something is: a URL where
nothing answers is one line, exit 2), and ``--warmup`` requests go one at a time, uncounted. It reports the
answered requests per second (QPS, over the load's wall time), the latency percentiles of the answered requests,
and the errors by kind. With SQuAD questions (a .json), each answer is also scored against its question: retrieval
recall@K (the question's own passage among the windows retrieved) and the best answer's exact match and F1.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from trainables.model.config import DecoupledConfig
from trainables.options import check_finite


@dataclass(frozen=True)
class LoadtestOptions:
    """One `decouple loadtest`."""

    url: str = field(metadata={"positional": True})
    """The service's address, as `decouple serve` printed it (http://127.0.0.1:8000)."""
    questions: str
    """The questions to send, in turn: a .txt file (one per line) or a SQuAD-format .json (its questions; each answer
    is then scored against its question)."""
    concurrency: int = 1
    """Requests in flight at once."""
    requests: int = 100
    """Requests to send in all (the questions reused in turn)."""
    top_k: int | None = None
    """top_k of each request; None leaves it to the service (its --top-k)."""
    eval_articles: int | None = None
    """SQuAD .json only: send only the questions of the articles `decouple train --eval-articles N` holds out."""
    seed: int = 0
    """The seed of that held-out split (`decouple train --seed`)."""
    warmup: int = 0
    """Requests sent one at a time before the load, not counted."""
    timeout_s: float = 30.0
    """Longest wait for one answer, in seconds; a request that takes longer is an error."""
    max_seconds: float = 300.0
    """Stop sending after this many seconds, whatever is left of --requests."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url={self.url!r} is not an HTTP address; pass the one `decouple serve` printed, e.g. "
                             "http://127.0.0.1:8000")
        for name in ("concurrency", "requests"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        check_finite(self)
        for name in ("timeout_s", "max_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0 (seconds)")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k={self.top_k} must be >= 1")
        if self.warmup < 0:
            raise ValueError(f"warmup={self.warmup} must be >= 0")
        if self.eval_articles is not None and self.eval_articles < 1:
            raise ValueError(f"eval_articles={self.eval_articles} must be >= 1")


@dataclass(frozen=True)
class Question:
    text: str
    example: object | None = None
    """The SQuAD example it came from (``trainables.data.features.QAExample``), None for a .txt line."""


@dataclass
class _Outcome:
    latency_ms: float | None = None
    """None when the request failed."""
    error: str | None = None
    reply: dict | None = None
    question: Question | None = None


def load_questions(options: LoadtestOptions) -> list[Question]:
    """The questions of ``options.questions``; `ValueError` in one line when there are none to send."""
    path = Path(options.questions)
    if not path.is_file():
        raise ValueError(f"questions={options.questions!r}: no such file; pass a .txt (one question per line) or a "
                         "SQuAD .json")
    if path.suffix.lower() == ".json":
        from trainables.data.squad import load_squad, split_by_article

        examples, _ = load_squad(str(path))
        if options.eval_articles is not None:
            _, examples = split_by_article(examples, eval_articles=options.eval_articles, seed=options.seed)
        questions = [Question(ex.question, ex) for ex in examples]
    else:
        if options.eval_articles is not None:
            raise ValueError("eval_articles applies to SQuAD .json questions; leave it out for a .txt file")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise ValueError(f"questions={options.questions!r} is not UTF-8 text; save it as UTF-8") from None
        questions = [Question(line.strip()) for line in lines if line.strip()]
    if not questions:
        raise ValueError(f"questions={options.questions!r} holds no question; write one per line (.txt) or pass "
                         "SQuAD .json")
    return questions


def loadtest(options: LoadtestOptions) -> dict:
    """Run the load (module docstring); returns the summary (`summarize`)."""
    questions = load_questions(options)
    return asyncio.run(_run(options, questions))


async def _run(options: LoadtestOptions, questions: list[Question]) -> dict:
    import aiohttp

    base = options.url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=options.timeout_s)
    connector = aiohttp.TCPConnector(limit=options.concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        info = await _info(session, base)
        for i in range(options.warmup):
            await _ask(session, base, questions[i % len(questions)], options.top_k)
        outcomes: list[_Outcome] = []
        sent = 0
        start = time.perf_counter()
        deadline = start + options.max_seconds

        async def client() -> None:
            nonlocal sent
            while sent < options.requests and time.perf_counter() < deadline:
                question = questions[sent % len(questions)]
                sent += 1
                outcomes.append(await _ask(session, base, question, options.top_k))

        clients = [asyncio.create_task(client()) for _ in range(options.concurrency)]
        await asyncio.wait(clients, timeout=options.max_seconds + options.timeout_s + 5)
        for task in clients:  # past every bound (a client stuck beyond its own timeout): stop it
            task.cancel()
        seconds = time.perf_counter() - start
    stopped = "every request sent" if sent >= options.requests else f"the time limit ({options.max_seconds:g}s)"
    return summarize(options, info, outcomes, seconds, stopped)


async def _info(session, base: str) -> dict:
    """``GET /info``; `ValueError` in one line when nothing, or something else, answers there."""
    import aiohttp

    try:
        async with session.get(f"{base}/info") as response:
            if response.status != 200:
                raise ValueError(f"url={base}: GET /info answered HTTP {response.status}; is this a `decouple "
                                 "serve` address?")
            return await response.json()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
        raise ValueError(f"url={base}: nothing answers ({type(err).__name__}: {err}); start `decouple serve` or "
                         "check the address") from None


async def _ask(session, base: str, question: Question, top_k: int | None) -> _Outcome:
    import aiohttp

    body = {"question": question.text, **({"top_k": top_k} if top_k is not None else {})}
    start = time.perf_counter()
    try:
        async with session.post(f"{base}/answer", json=body) as response:
            text = await response.text()
            latency = (time.perf_counter() - start) * 1000
            if response.status != 200:
                return _Outcome(error=f"HTTP {response.status}: {_error_line(text)}", question=question)
            return _Outcome(latency, reply=json.loads(text), question=question)
    except asyncio.TimeoutError:
        return _Outcome(error="timed out", question=question)
    except (aiohttp.ClientError, OSError, ValueError) as err:
        return _Outcome(error=f"{type(err).__name__}", question=question)


def _error_line(text: str) -> str:
    try:
        return str(json.loads(text).get("error", ""))[:200]
    except (ValueError, AttributeError):
        return text.strip().splitlines()[0][:200] if text.strip() else ""


def summarize(options: LoadtestOptions, info: dict, outcomes: list[_Outcome], seconds: float, stopped: str) -> dict:
    """What the load measured: counts, QPS (answered requests per second of the load), latency percentiles (ms) of
    the answered requests, errors by kind, and for SQuAD questions recall@K, exact match and F1."""
    answered = [o for o in outcomes if o.error is None]
    latencies = sorted(o.latency_ms for o in answered)
    return {
        "url": options.url, "served": {k: info.get(k) for k in ("model", "scorer", *DecoupledConfig.CACHE_SETTINGS,
                                                                "windows", "max_batch_size")},
        "concurrency": options.concurrency, "top_k": options.top_k or info.get("top_k"), "sent": len(outcomes),
        "answered": len(answered), "errors": len(outcomes) - len(answered),
        "error_kinds": dict(Counter(o.error for o in outcomes if o.error).most_common(5)),
        "seconds": round(seconds, 3), "qps": round(len(answered) / seconds, 3) if seconds > 0 else 0.0,
        "latency_ms": {name: round(_percentile(latencies, q), 3) if latencies else None
                       for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
        "stopped": stopped, **_scores(answered),
    }


def _percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ascending ``ordered``."""
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _scores(answered: list[_Outcome]) -> dict:
    """recall@K, exact match and F1 over the answered SQuAD questions (each question once); empty without them."""
    from_squad = {o.question.example.id: o for o in answered if o.question.example is not None}
    if not from_squad:
        return {}
    from trainables.metrics.squad import squad_v1

    examples = [o.question.example for o in from_squad.values()]
    found = sum(ex.passage_id in {a["passage_id"] for a in o.reply["answers"]}
                for ex, o in zip(examples, from_squad.values()))
    best = {qid: (o.reply["answers"][0]["text"] if o.reply["answers"] else "") for qid, o in from_squad.items()}
    metrics = squad_v1(best, examples)
    return {"questions_scored": len(examples), "recall_at_k": round(found / len(examples), 4),
            "exact_match": round(metrics["exact_match"], 2), "f1": round(metrics["f1"], 2)}


def summary_lines(summary: dict) -> list[str]:
    """The summary as the command prints it without --json."""
    served, lat = summary["served"], summary["latency_ms"]
    what = (f"{served['scorer']} split {served['split']}" if served.get("scorer") else "?")
    lines = [f"{summary['url']} ({what}, {served.get('windows')} windows): {summary['sent']} requests at concurrency "
             f"{summary['concurrency']}, top_k {summary['top_k']}, in {summary['seconds']:.1f}s (stopped: "
             f"{summary['stopped']})",
             f"QPS {summary['qps']:.2f}; latency ms p50 {lat['p50']}, p95 {lat['p95']}, p99 {lat['p99']}, max "
             f"{lat['max']}",
             f"errors {summary['errors']}" + (f": {summary['error_kinds']}" if summary["errors"] else "")]
    if "recall_at_k" in summary:
        lines.append(f"over {summary['questions_scored']} SQuAD questions: recall@{summary['top_k']} "
                     f"{summary['recall_at_k']:.3f}, best answer EM {summary['exact_match']:.2f}, F1 "
                     f"{summary['f1']:.2f}")
    return lines
