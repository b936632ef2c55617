"""`decouple answer`: answers from a corpus cache equal the live model's best span over the same windows."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers

from orchestrator.cli import main
from trainables.cache.reader import question_tensors
from trainables.data.qa_features import passage_windows
from trainables.data.squad import load_squad
from trainables.metrics.span_decoding import best_window_spans
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel

Q, P, STRIDE = 16, 40, 12
QUESTION = "Which instrument does the first person play?"


def save_tiny_model(path: Path, tokenizer, seed: int) -> Path:
    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    model = DecoupledModel.from_hf_config(hf_config, DecoupledConfig(split=2, max_question_len=Q))
    model.tokenizer = tokenizer
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Three synthetic paragraphs as a JSONL corpus with ids doc-0..doc-2."""
    examples, _ = load_squad("synthetic:articles=1")
    contexts = list(dict.fromkeys(ex.context for ex in examples))[:3]
    passages = {f"doc-{i}": text for i, text in enumerate(contexts)}
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": pid, "text": text}) + "\n" for pid, text in passages.items()))
    return path, passages


@pytest.fixture(scope="module")
def built(tmp_path_factory, local_ray, tokenizer, corpus):
    """A corpus cache built through the CLI."""
    root = tmp_path_factory.mktemp("answer")
    model_dir = save_tiny_model(root / "model", tokenizer, seed=0)
    out = root / "cache"
    code = main(["cache", "build", "--model", str(model_dir), "--data", str(corpus[0]), "--out", str(out),
                 "--rows-per-shard", "3", "--batch-size", "4", "--max-passage-len", str(P),
                 "--doc-stride", str(STRIDE), "--json"])
    assert code == 0
    return model_dir, out


def live_best_span(model: DecoupledModel, tokenizer, text: str) -> tuple[str, float]:
    """The best span of the live model over every window of ``text``: the reference the cache must reproduce."""
    windows = passage_windows(text, tokenizer, max_passage_len=P, doc_stride=STRIDE)
    p_ids = torch.full((len(windows), P), tokenizer.pad_token_id)
    p_mask = torch.zeros(len(windows), P, dtype=torch.long)
    offsets = torch.full((len(windows), P, 2), -1)
    for i, w in enumerate(windows):
        p_ids[i, :len(w.input_ids)] = torch.tensor(w.input_ids)
        p_mask[i, :len(w.input_ids)] = 1
        offsets[i, :len(w.offsets)] = torch.tensor(w.offsets)
    q_ids, q_mask = question_tensors(tokenizer, QUESTION, Q)
    b = len(windows)
    with torch.inference_mode():
        out = model.eval()(q_ids.expand(b, -1), q_mask.expand(b, -1), p_ids, p_mask)
    scores, starts, ends = best_window_spans(out.start_logits[:, Q:], out.end_logits[:, Q:],
                                             (offsets[..., 0] >= 0) & (p_mask > 0), n_best=20, max_answer_len=30)
    row = int(scores.argmax())
    return text[int(offsets[row, starts[row], 0]):int(offsets[row, ends[row], 1])], float(scores[row])


def answer_json(capsys, *args: str) -> dict:
    assert main(["answer", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_answer_from_cache_equals_the_live_model(built, corpus, tokenizer, capsys):
    model_dir, cache = built
    _, passages = corpus
    model = DecoupledModel.from_pretrained(model_dir)
    for pid, text in passages.items():
        result = answer_json(capsys, "--model", str(model_dir), "--cache", str(cache), "--question", QUESTION,
                             "--passage-id", pid)
        expected_text, expected_score = live_best_span(model, tokenizer, text)
        assert result["passage_id"] == pid
        assert result["text"] == expected_text == text[result["char_start"]:result["char_end"]]
        assert result["score"] == pytest.approx(expected_score, abs=1e-4)


def test_answer_without_passage_id_takes_the_best_passage(built, corpus, capsys):
    model_dir, cache = built
    common = ["--model", str(model_dir), "--cache", str(cache), "--question", QUESTION]
    per_passage = [answer_json(capsys, *common, "--passage-id", pid) for pid in corpus[1]]
    overall = answer_json(capsys, *common, "--batch-size", "2")
    best = max(per_passage, key=lambda r: r["score"])
    assert (overall["passage_id"], overall["text"]) == (best["passage_id"], best["text"])
    assert overall["score"] == pytest.approx(best["score"], abs=1e-5)


def test_plain_output_prints_the_answer_first(built, capsys):
    model_dir, cache = built
    assert main(["answer", "--model", str(model_dir), "--cache", str(cache), "--question", QUESTION,
                 "--passage-id", "doc-1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("(passage doc-1, window ")
    assert lines[-2] == answer_json(capsys, "--model", str(model_dir), "--cache", str(cache), "--question",
                                    QUESTION, "--passage-id", "doc-1")["text"]


@pytest.mark.parametrize("extra, message", [
    (["--passage-id", "nope"], "has no passage 'nope'; check --passage-id (3 passages cached from"),
    (["--question", "  "], "question is empty"),
])
def test_bad_requests_get_one_line(built, capsys, extra, message):
    model_dir, cache = built
    args = ["answer", "--model", str(model_dir), "--cache", str(cache), "--question", QUESTION, *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_cache_of_another_model_is_refused(built, tokenizer, tmp_path, capsys):
    _, cache = built
    other = save_tiny_model(tmp_path / "other", tokenizer, seed=1)
    assert main(["answer", "--model", str(other), "--cache", str(cache), "--question", QUESTION]) == 2
    assert "was built by a model with other weights" in capsys.readouterr().err
