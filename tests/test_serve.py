"""`decouple serve` and `decouple loadtest` (issue 32), through the real CLI and a real HTTP client on tiny data.

Two services run side by side for the whole module, each a `decouple serve` process with its own local Ray: the
tiny decoupled student over its cache, and `--baseline full` (a tiny full model) over the same cache. They start
together (a start is Ray, Serve's proxy and a replica loading torch: half a minute on a busy 2-core machine), and the
last test stops one with SIGINT and the other with SIGTERM. The cache is built by `decouple cache build`'s own code
with its Ray Data step run in this process (`_build_cache_in_process`): what is tested here is what serves it.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch

from orchestrator.cli import main
from tests.test_answer import save_tiny_model
from tests.test_signals import ray_processes
from trainables.data.features import passage_id_for

REPO = Path(__file__).parents[1]
P, STRIDE = 24, 8  # several windows per passage
PASSAGES = {
    "Anna Berg": ("Anna Berg plays the violin in the city orchestra. She started lessons at the age of six and now "
                  "teaches young players every Saturday morning in the old music hall.",
                  "Who plays the violin in the city orchestra?", "Anna Berg"),
    "Etna": ("Mount Etna is an active volcano on the east coast of Sicily. Its eruptions have shaped the island for "
             "thousands of years, and farmers grow grapes on its fertile slopes.",
             "Which volcano is on the east coast of Sicily?", "Mount Etna"),
    "Golden Gate": ("The Golden Gate Bridge opened in 1937 and spans the strait between San Francisco Bay and the "
                    "Pacific Ocean. Its towers are painted international orange.",
                    "When did the Golden Gate Bridge open?", "1937"),
    "Sourdough": ("Sourdough bread rises with wild yeast and lactic acid bacteria kept in a starter. Bakers feed the "
                  "starter with flour and water before mixing the dough.",
                  "What does sourdough bread rise with?", "wild yeast and lactic acid bacteria"),
}
QUESTIONS = {passage_id_for(text): question for text, question, _ in PASSAGES.values()}
START_TIMEOUT_S = 300


# ---- the data, the services ------------------------------------------------------------------------------------------
def squad_json(path: Path) -> Path:
    articles = [{"title": title, "paragraphs": [{"context": text, "qas": [{
        "id": f"q{i}", "question": question, "answers": [{"text": answer, "answer_start": text.index(answer)}]}]}]}
        for i, (title, (text, question, answer)) in enumerate(PASSAGES.items())]
    path.write_text(json.dumps({"version": "1.1", "data": articles}))
    return path


def _build_cache_in_process(model: Path, data: Path, out: Path) -> None:
    """`decouple cache build` with its encoding step (a Ray Data actor pool) run here by the same encoder class."""
    from orchestrator import cache_build
    from trainables.cache.encoder import PassageEncoder

    def encode_rows(plan, rows, options, identity_sha256, blocks):
        encoder = PassageEncoder(str(model), options.model_overrides(), identity_sha256, threads=1)
        for lo in range(0, len(rows), 4):
            part = rows[lo:lo + 4]
            yield encoder({"row": part, "input_ids": plan.input_ids[part], "length": plan.lengths[part]})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cache_build, "encode_rows", encode_rows)
        patch.setattr(cache_build, "ray_session", lambda *a, **k: _nothing())
        patch.setattr("ray.get_gpu_ids", lambda: [])
        assert main(["cache", "build", "--model", str(model), "--data", str(data), "--out", str(out),
                     "--rows-per-shard", "5", "--max-passage-len", str(P), "--doc-stride", str(STRIDE),
                     "--json"]) == 0


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@pytest.fixture(scope="module")
def built(tmp_path_factory, tokenizer) -> dict:
    root = tmp_path_factory.mktemp("serve")
    model = save_tiny_model(root / "model", tokenizer, seed=0)
    data = squad_json(root / "squad.json")
    _build_cache_in_process(model, data, root / "cache")
    return {"root": root, "model": model, "data": data, "cache": root / "cache"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    """A `decouple serve` process with its own Ray (in its own temporary directory)."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
        env = {**os.environ, "RAY_ADDRESS": "local", "RAY_TMPDIR": self.ray_tmp}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "serve", *args, "--port", str(self.port),
             "--max-batch-size", "8", "--batch-wait-ms", "20"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.process.poll() is None, self.process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "decouple serve did not answer /healthz"
            try:
                if request(self.url, "GET", "/healthz")[0] == 200:  # Serve's proxy answers 404/503 until then
                    return
            except OSError:
                pass
            time.sleep(0.5)

    def stop(self, signum: int) -> tuple[int, str]:
        self.process.send_signal(signum)
        _, stderr = self.process.communicate(timeout=120)
        return self.process.returncode, stderr

    def close(self) -> None:
        if self.process.poll() is None:  # a test failed before the stop: stop it the clean way
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def services(built, tiny_qa_checkpoint):
    common = ["--cache", str(built["cache"])]
    running = {"student": Service("--model", str(built["model"]), *common),
               "full": Service("--model", str(tiny_qa_checkpoint), "--baseline", "full", *common)}
    try:
        for service in running.values():
            service.wait_ready()
        yield running
    finally:
        for service in running.values():
            service.close()


# ---- an HTTP client (the standard library's) -------------------------------------------------------------------------
def request(url: str, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
    where = urlparse(url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def get(url: str, path: str) -> tuple[int, dict]:
    status, text = request(url, "GET", path)
    return status, json.loads(text)


def ask(url: str, question: str, top_k: int | None = None) -> dict:
    body = {"question": question, **({"top_k": top_k} if top_k is not None else {})}
    status, text = request(url, "POST", "/answer", json.dumps(body).encode())
    assert status == 200, text
    return json.loads(text)


def same_answers(a: list[dict], b: list[dict]) -> bool:
    key = [(x["passage_id"], x["window"], x["text"], x["char_start"]) for x in a]
    return key == [(x["passage_id"], x["window"], x["text"], x["char_start"]) for x in b] and all(
        x["score"] == pytest.approx(y["score"], abs=1e-4) for x, y in zip(a, b))


# ---- the tests -------------------------------------------------------------------------------------------------------
def test_healthz_and_info(services, built, tokenizer):
    from trainables.data.qa_features import passage_windows

    windows = sum(len(passage_windows(text, tokenizer, max_passage_len=P, doc_stride=STRIDE))
                  for text, _, _ in PASSAGES.values())
    assert windows > len(PASSAGES)  # passages of several windows
    for name, service in services.items():
        assert get(service.url, "/healthz") == (200, {"status": "ok"})
        status, info = get(service.url, "/info")
        assert status == 200
        assert (info["passages"], info["windows"], info["max_passage_len"]) == (4, windows, P)
        assert info["retrieval"] == "bm25" and info["cache_bytes"] > 0 and info["max_question_len"] == 16
    student, full = get(services["student"].url, "/info")[1], get(services["full"].url, "/info")[1]
    assert (student["scorer"], student["split"], student["compression_ratio"], student["cache_dtype"]) == \
        ("decoupled", 2, 1, "fp32")
    assert (full["scorer"], full["baseline"], full["split"], full["cache_dtype"]) == ("full", "full", 0, None)


def test_served_answers_equal_decouple_answer(services, built, capsys):
    """With every window retrieved, the best served answer from a passage is `decouple answer --passage-id`'s."""
    url, windows = services["student"].url, get(services["student"].url, "/info")[1]["windows"]
    for pid, question in QUESTIONS.items():
        served = [a for a in ask(url, question, top_k=windows)["answers"] if a["passage_id"] == pid]
        assert main(["answer", "--model", str(built["model"]), "--cache", str(built["cache"]), "--question",
                     question, "--passage-id", pid, "--json"]) == 0
        expected = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        best = served[0]  # answers come best first
        assert (best["text"], best["window"], best["char_start"], best["char_end"]) == \
            (expected["text"], expected["window"], expected["char_start"], expected["char_end"])
        assert best["score"] == pytest.approx(expected["score"], abs=1e-4)


def test_retrieval_reads_the_question_s_passage(services):
    for pid, question in QUESTIONS.items():
        reply = ask(services["student"].url, question, top_k=2)
        assert len(reply["answers"]) == 2
        assert pid in {a["passage_id"] for a in reply["answers"]}
        top = max(reply["answers"], key=lambda a: a["retrieval_score"])
        assert top["passage_id"] == pid and top["retrieval_score"] > 0


def test_sixteen_concurrent_requests_are_batched_and_answered_alike(services):
    url = services["student"].url
    questions = [list(QUESTIONS.values())[i % 4] for i in range(16)]
    alone = {q: ask(url, q, top_k=3)["answers"] for q in QUESTIONS.values()}
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda q: ask(url, q, top_k=3), questions))
    for question, reply in zip(questions, replies):
        assert same_answers(reply["answers"], alone[question])
    assert max(reply["batch"] for reply in replies) > 1  # answered together (@serve.batch), not one by one


BAD = [
    (b"", "the body is not JSON"),
    (b"what is this", "the body is not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "the body is a JSON array, not an object"),
    (b'{"question": ""}', "question is empty"),
    (b'{"question": "  \\n\\t "}', "question is empty"),
    (b'{"top_k": 3}', "question is missing"),
    (b'{"question": 42}', "question must be a string, not 42"),
    (b'{"question": "Who?", "top_k": "3"}', 'top_k must be an integer, not "3"'),
    (b'{"question": "Who?", "top_k": 2.5}', "top_k must be an integer, not 2.5"),
    (b'{"question": "Who?", "top_k": true}', "top_k must be an integer, not true"),
    (b'{"question": "Who?", "top_k": 0}', "top_k=0 is out of range; use 1..50"),
    (b'{"question": "Who?", "top_k": 51}', "top_k=51 is out of range; use 1..50"),
    (b'{"question": "Who?", "topk": 3}', "unknown field 'topk'"),
    (json.dumps({"question": "violin " * 20}).encode(), "question has 20 tokens but the model's max_question_len = 16 "
                                                        "fits 14; shorten the question"),
    (json.dumps({"question": "x" * 70_000}).encode(), "the body has"),
]


@pytest.mark.parametrize("body, message", BAD, ids=[m.split(";")[0][:40] for _, m in BAD])
def test_bad_input_is_400_in_one_line_and_the_service_keeps_answering(services, body, message):
    url = services["student"].url
    status, text = request(url, "POST", "/answer", body)
    assert status == 400, text
    error = json.loads(text)["error"]
    assert message in error and "\n" not in error
    assert ask(url, "Who plays the violin?", top_k=1)["answers"]


@pytest.mark.parametrize("method, path, status", [("GET", "/answer", 405), ("POST", "/healthz", 405),
                                                  ("GET", "/nowhere", 404)])
def test_wrong_method_or_path_says_which(services, method, path, status):
    code, text = request(services["student"].url, method, path, b"{}" if method == "POST" else None)
    assert code == status and "\n" not in json.loads(text)["error"]


def test_baseline_full_answers_as_the_full_model_over_the_same_windows(services, built, tiny_qa_checkpoint,
                                                                      tokenizer):
    """The baseline retrieves what the student retrieves, and answers each window as the Hugging Face model does over
    ``[CLS] question [SEP] window [SEP]``."""
    from transformers import BertForQuestionAnswering

    from trainables.cache.reader import PassageCache
    from trainables.metrics.span_decoding import best_window_spans

    hf = BertForQuestionAnswering.from_pretrained(tiny_qa_checkpoint).eval()
    cache = PassageCache(built["cache"])
    question = QUESTIONS[passage_id_for(PASSAGES["Etna"][0])]
    baseline = ask(services["full"].url, question, top_k=4)["answers"]
    student = ask(services["student"].url, question, top_k=4)["answers"]
    assert {(a["passage_id"], a["window"]) for a in baseline} == {(a["passage_id"], a["window"]) for a in student}
    q_ids = tokenizer(question, add_special_tokens=False)["input_ids"]
    for answer in baseline:
        window = cache.read(cache.locate([(answer["passage_id"], answer["window"])]))
        length = int(window.mask.sum())
        ids = [tokenizer.cls_token_id, *q_ids, tokenizer.sep_token_id] + window.input_ids[0, :length].tolist()
        types = [0] * (len(q_ids) + 2) + [1] * length
        with torch.inference_mode():
            out = hf(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types]))
        q = len(q_ids) + 2
        valid = (window.offsets[0, :length, 0] >= 0)[None]
        score, start, end = best_window_spans(out.start_logits[:, q:], out.end_logits[:, q:], valid, n_best=20,
                                              max_answer_len=30)
        char_start, char_end = int(window.offsets[0, start[0], 0]), int(window.offsets[0, end[0], 1])
        assert answer["text"] == window.span_text(0, char_start, char_end)
        assert answer["score"] == pytest.approx(float(score[0]), abs=1e-4)


def test_loadtest_measures_and_stops_by_itself(services, built, capsys):
    url = services["student"].url
    assert main(["loadtest", url, "--questions", str(built["data"]), "--concurrency", "4", "--requests", "12",
                 "--top-k", "1", "--warmup", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["sent"], summary["answered"], summary["errors"]) == (12, 12, 0)
    assert summary["qps"] > 0 and summary["served"]["scorer"] == "decoupled"
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert summary["recall_at_k"] == 1.0 and summary["questions_scored"] == 4  # BM25 finds each question's passage
    assert 0 <= summary["f1"] <= 100

    questions = built["root"] / "questions.txt"
    questions.write_text("\n".join(QUESTIONS.values()) + "\n")
    assert main(["loadtest", url, "--questions", str(questions), "--concurrency", "2", "--requests", "1000000",
                 "--max-seconds", "1", "--json"]) == 0
    bounded = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert bounded["stopped"].startswith("the time limit") and 0 < bounded["sent"] < 1_000_000
    assert "recall_at_k" not in bounded  # plain questions have no passage to find


def test_loadtest_where_nothing_answers_is_one_line(built, capsys):
    assert main(["loadtest", f"http://127.0.0.1:{free_port()}", "--questions", str(built["data"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing answers" in err[0] and "start `decouple serve`" in err[0]


def test_refused_before_serve_starts(built, tokenizer, tmp_path, capsys, ray_starts):
    """A cache built by another model, a port in use: one line, exit 2, before Ray (and so Serve) starts."""
    other = save_tiny_model(tmp_path / "other", tokenizer, seed=1)
    capsys.readouterr()  # the save's own progress line
    assert main(["serve", "--model", str(other), "--cache", str(built["cache"]), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was built by a model with other weights" in err[0]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--model", str(built["model"]), "--cache", str(built["cache"]), "--port",
                     str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"port={port} on 127.0.0.1 cannot be listened on" in err[0]
    assert ray_starts == []


def test_a_replica_that_dies_is_replaced_and_no_request_hangs(services):
    """SIGKILL the replica under load: every request ends (answered, or an error), none waits past its timeout; Serve
    starts a new replica, which answers as the old one did."""
    from orchestrator.loadtest import LoadtestOptions, loadtest

    url = services["student"].url
    before = ask(url, "Who plays the violin?", top_k=2)["answers"]
    old_pid = get(url, "/info")[1]["replica_pid"]
    questions = Path(services["student"].ray_tmp) / "q.txt"
    questions.write_text("Who plays the violin?\n")
    summary = {}
    load = threading.Thread(target=lambda: summary.update(loadtest(LoadtestOptions(
        url, str(questions), concurrency=4, requests=40, timeout_s=90, max_seconds=120))))
    load.start()
    time.sleep(0.5)
    os.kill(old_pid, signal.SIGKILL)
    load.join(timeout=240)
    assert not load.is_alive()
    assert summary["sent"] == summary["answered"] + summary["errors"] and "timed out" not in summary["error_kinds"]
    deadline = time.monotonic() + START_TIMEOUT_S
    while get(url, "/info")[1]["replica_pid"] in (old_pid,) and time.monotonic() < deadline:
        time.sleep(1)
    assert same_answers(ask(url, "Who plays the violin?", top_k=2)["answers"], before)


def test_sigint_and_sigterm_stop_cleanly(services):
    """Last: Ctrl-C stops the student's service (130), SIGTERM the baseline's (143): one line, no traceback, and no
    process of their Ray left."""
    for name, signum, code in (("student", signal.SIGINT, 130), ("full", signal.SIGTERM, 143)):
        service = services[name]
        returncode, stderr = service.stop(signum)
        assert returncode == code, stderr[-2000:]
        last = stderr.strip().splitlines()[-1]
        assert last.startswith(f"decouple serve: interrupted ({signal.Signals(signum).name}); the service stopped")
        assert "Traceback" not in stderr and "*** " not in stderr
        deadline = time.monotonic() + 30
        while ray_processes(service.ray_tmp) and time.monotonic() < deadline:
            time.sleep(1)
        assert ray_processes(service.ray_tmp) == []


def test_bm25_index_is_kept_beside_the_cache_and_rebuilt_when_the_cache_changed(built, tmp_path):
    from trainables.serving.retrieval import IndexSource, WindowIndex

    cache = tmp_path / "cache"
    shutil.copytree(built["cache"], cache)
    WindowIndex.open(cache)
    assert WindowIndex.open(cache)[1] == IndexSource(built=False, saved=None)  # kept beside the cache: read back
    manifest = json.loads((cache / "manifest.json").read_text())
    (cache / "manifest.json").write_text(json.dumps({**manifest, "source": "elsewhere"}, indent=2))
    assert WindowIndex.open(cache)[1] == IndexSource(built=True, saved=None)  # the cache changed: rebuilt, kept
    index, source = WindowIndex.open(cache)
    assert source == IndexSource(built=False, saved=None) and sorted(p.name for p in cache.iterdir()) == \
        ["bm25", "manifest.json", "shard-00000.parquet", "shard-00001.parquet"]  # no temporary left
    rows, scores = index.search(["What does sourdough bread rise with?", "zzz qqq"], k=3)
    assert rows.shape == scores.shape == (2, 3) and scores[0, 0] > 0 and scores[1].max() == 0


def test_help_loads_no_heavy_library():
    from tests.test_cli_imports import _modules_after

    for command in ("serve", "loadtest"):
        text, loaded = _modules_after([command, "--help"])
        assert f"usage: decouple {command}" in text and loaded == []
