"""Passage cache: Ray Data build -> verify -> eval from the cache; resume after a crash; bad or mismatched caches.

A tiny random QA model (saved with the MiniLM tokenizer) and the synthetic SQuAD set keep every build to a few
seconds; the test session's local Ray (2 CPUs, `local_ray` in conftest) runs them.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import transformers

from orchestrator.cache_build import build_cache
from orchestrator.cache_options import CacheBuildOptions
from orchestrator.cli import main
from trainables.cache.format import MANIFEST, CacheError, read_manifest
from trainables.cache.plan import load_passages, plan_windows
from trainables.cache.reader import PassageCache, cached_state_provider
from trainables.cache.verify import verify_cache
from trainables.data.errors import DataError
from trainables.data.qa_features import build_qa_features
from trainables.data.squad import load_squad
from trainables.metrics.evaluation import evaluate_qa, predict_qa_logits
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel

DATA = "synthetic:articles=2"  # 8 passages, 48 questions
Q, P, STRIDE, ROWS_PER_SHARD = 16, 48, 16, 8


class Interrupted(Exception):
    """Stands in for a crash in the middle of a build."""


def save_tiny_model(path: Path, tokenizer, *, seed: int = 0, **decoupled) -> Path:
    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    model = DecoupledModel.from_hf_config(hf_config, DecoupledConfig(max_question_len=Q, **decoupled))
    model.tokenizer = tokenizer
    model.save_pretrained(path)
    return path


def options(model_dir: Path, out: Path, **kw) -> CacheBuildOptions:
    return CacheBuildOptions(model=str(model_dir), data=DATA, out=str(out), rows_per_shard=ROWS_PER_SHARD,
                             batch_size=4, max_passage_len=P, doc_stride=STRIDE, **kw)


def features(tokenizer, doc_stride: int = STRIDE, max_passage_len: int = P):
    examples, _ = load_squad(DATA)
    feats, _ = build_qa_features(examples, tokenizer, max_question_len=Q, max_passage_len=max_passage_len,
                                 doc_stride=doc_stride)
    return feats


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory, tokenizer):
    return save_tiny_model(tmp_path_factory.mktemp("fp32_model"), tokenizer, split=1)


@pytest.fixture(scope="module")
def fp32_build(tmp_path_factory, local_ray, fp32_model):
    """An fp32 cache built in two runs: the first crashes after two shards, the second finishes it."""
    out = tmp_path_factory.mktemp("cache") / "fp32"
    first_run = []

    def crash_after_two(entry):
        first_run.append(entry.file)
        if len(first_run) == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        build_cache(options(fp32_model, out), progress=crash_after_two)
    partial = read_manifest(out)
    before = {name: (out / name).stat() for name in first_run}
    second_run = []
    summary = build_cache(options(fp32_model, out), progress=lambda entry: second_run.append(entry.file))
    return {"out": out, "first_run": first_run, "second_run": second_run, "partial": partial, "before": before,
            "summary": summary}


def test_interrupted_build_resumes_without_rewriting(fp32_build):
    out, partial, summary = fp32_build["out"], fp32_build["partial"], fp32_build["summary"]
    assert not partial.complete and [s.file for s in partial.shards] == sorted(fp32_build["first_run"])
    assert summary.shards == 4 and summary.shards_kept == 2 and summary.shards_written == 2
    assert set(fp32_build["second_run"]).isdisjoint(fp32_build["first_run"])
    assert len(fp32_build["second_run"]) == 2
    for name, stat in fp32_build["before"].items():
        now = (out / name).stat()
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns), f"{name} was rewritten"
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_build_reports_the_sweeps_state_bytes_and_its_own_disk_bytes(fp32_build, fp32_model):
    """The states' bytes per token are the figure a sweep measures for the model (`measure_speedup`), under the same
    name; the Parquet shards hold more per token (padding, overlaps, ids, offsets, text) under another."""
    from trainables.speed.timing import BenchBatch, TimingOptions, measure_speedup

    model = DecoupledModel.from_pretrained(fp32_model)
    batch = BenchBatch.random(model.hf_config.vocab_size, 2, Q, P, seed=0)
    swept = measure_speedup(model.hf, model, batch, TimingOptions(repeats=1, warmup=0))["state_bytes_per_token"]
    record = fp32_build["summary"].to_dict()
    assert record["state_bytes_per_token"] == swept == 32 * 4  # 32 fp32 values
    assert record["disk_bytes_per_token"] > record["state_bytes_per_token"] and "bytes_per_token" not in record


def test_rerun_of_a_complete_build_encodes_nothing(fp32_build, fp32_model):
    summary = build_cache(options(fp32_model, fp32_build["out"]))
    assert (summary.shards_written, summary.windows_encoded, summary.shards_kept) == (0, 0, 4)


def test_manifest_and_shards_describe_the_plan(fp32_build, fp32_model, tokenizer):
    out = fp32_build["out"]
    manifest = read_manifest(out)
    passages, _ = load_passages(DATA)
    plan = plan_windows(passages, tokenizer, max_passage_len=P, doc_stride=STRIDE)
    assert manifest.complete and manifest.windows == len(plan) == sum(s.rows for s in manifest.shards)
    assert (manifest.split, manifest.compression_ratio, manifest.cache_dtype) == (1, 1, "fp32")
    assert (manifest.max_passage_len, manifest.doc_stride, manifest.state_width) == (P, STRIDE, 32)
    assert json.loads((out / MANIFEST).read_text())["shapes"]["states"] == [P, 32]
    assert verify_cache(out).ok

    # Plain pyarrow reads the canonical tensor columns back with their shapes.
    table = pq.read_table(out / "shard-00000.parquet")
    assert isinstance(table.schema.field("states").type, pa.FixedShapeTensorType)
    states = table.column("states").chunk(0).to_numpy_ndarray()
    assert states.shape == (ROWS_PER_SHARD, P, 32) and states.dtype == np.float32
    lengths = table.column("length").to_numpy()
    assert np.all(states[0, lengths[0]:] == 0)
    assert table.column("passage_id").to_pylist()[0] == plan.windows[0].passage_id
    assert np.array_equal(table.column("input_ids").chunk(0).to_numpy_ndarray()[0], plan.input_ids[0])
    # The stored text turns offsets into exactly the passage's characters.
    offsets = table.column("offsets").chunk(0).to_numpy_ndarray()[0]
    start, end = offsets[0]
    text, base = table.column("text")[0].as_py(), table.column("text_start")[0].as_py()
    assert text[start - base:end - base] == passages[0].text[start:end]


def test_fp32_cached_eval_equals_live(fp32_build, fp32_model, tokenizer):
    model = DecoupledModel.from_pretrained(fp32_model)
    feats = features(tokenizer)
    provider = cached_state_provider(fp32_build["out"], model, feats, doc_stride=STRIDE)
    live_metrics, live_predictions = evaluate_qa(model, feats, batch_size=8)
    cached_metrics, cached_predictions = evaluate_qa(model, feats, batch_size=8, passage_states=provider)
    assert cached_predictions == live_predictions
    assert cached_metrics == live_metrics
    live_start, _ = predict_qa_logits(model, feats, batch_size=8)
    cached_start, _ = predict_qa_logits(model, feats, batch_size=8, passage_states=provider)
    # Padding positions differ (the cache stores zeros there) but are never keys, so real tokens agree.
    real = torch.cat([feats.question_mask, feats.passage_mask], dim=1).bool()
    torch.testing.assert_close(cached_start[real], live_start[real], rtol=0, atol=1e-5)


def test_int8_compressed_cache_reads_back_what_encode_passage_stored(tmp_path, local_ray, tokenizer):
    model_dir = save_tiny_model(tmp_path / "model", tokenizer, split=2, compression_ratio=2, cache_dtype="int8")
    build_cache(options(model_dir, tmp_path / "cache"))
    table = pq.read_table(tmp_path / "cache" / "shard-00000.parquet")
    assert table.column("states").chunk(0).to_numpy_ndarray().dtype == np.int8
    assert table.column("scale").chunk(0).to_numpy_ndarray().shape == (ROWS_PER_SHARD, 16)
    model = DecoupledModel.from_pretrained(model_dir)
    feats = features(tokenizer)
    def quantized_live(rows):  # the same int8 states computed now instead of read from the cache
        return model.encode_passage(feats.passage_ids[rows], feats.passage_mask[rows]), feats.passage_mask[rows]

    live_metrics, live = evaluate_qa(model, feats, passage_states=quantized_live)
    cached_metrics, cached = evaluate_qa(model, feats, passage_states=cached_state_provider(tmp_path / "cache", model,
                                                                                            feats))
    assert cached == live and cached_metrics == live_metrics
    # Plain evaluation (training's, a sweep trial's, `decouple eval`'s) scores an int8 student through int8 states too.
    plain_start, _ = predict_qa_logits(model, feats, batch_size=8)
    quantized_start, _ = predict_qa_logits(model, feats, batch_size=8, passage_states=quantized_live)
    torch.testing.assert_close(plain_start, quantized_start, rtol=0, atol=1e-6)


def corrupt_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    shard = target / "shard-00001.parquet"
    payload = bytearray(shard.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    shard.write_bytes(bytes(payload))
    return shard


def test_corrupted_shard_is_caught(fp32_build, fp32_model, tokenizer, tmp_path, capsys):
    corrupt_copy(fp32_build["out"], tmp_path / "cache")
    report = verify_cache(tmp_path / "cache")
    assert not report.ok and len(report.problems) == 1
    assert "shard-00001.parquet" in report.problems[0] and "sha256" in report.problems[0]
    assert main(["cache", "verify", str(tmp_path / "cache")]) == 1
    assert "shard-00001.parquet: sha256 differs" in capsys.readouterr().out

    model = DecoupledModel.from_pretrained(fp32_model)
    feats = features(tokenizer)
    provider = cached_state_provider(tmp_path / "cache", model, feats)
    with pytest.raises(CacheError, match="shard-00001.parquet: sha256 differs"):
        evaluate_qa(model, feats, passage_states=provider)


def test_truncated_and_missing_shards_are_caught(fp32_build, tmp_path):
    shutil.copytree(fp32_build["out"], tmp_path / "cache")
    shard = tmp_path / "cache" / "shard-00002.parquet"
    shard.write_bytes(shard.read_bytes()[:100])
    (tmp_path / "cache" / "shard-00003.parquet").unlink()
    problems = verify_cache(tmp_path / "cache").problems
    assert len(problems) == 2
    assert "shard-00002.parquet" in problems[0] and "bytes but the manifest says" in problems[0]
    assert "shard-00003.parquet: missing" in problems[1]


def test_verify_cli_accepts_a_good_cache(fp32_build, capsys):
    assert main(["cache", "verify", str(fp32_build["out"])]) == 0
    assert ": ok: 4 shards" in capsys.readouterr().out


def test_cache_of_another_model_is_refused(fp32_build, tmp_path, tokenizer):
    other = DecoupledModel.from_pretrained(save_tiny_model(tmp_path / "other", tokenizer, seed=1, split=1))
    with pytest.raises(CacheError, match="other weights"):
        cached_state_provider(fp32_build["out"], other, features(tokenizer))


@pytest.mark.parametrize("override, message", [
    ({"split": 2}, "built with split=1 but the model has split=2"),
    ({"cache_dtype": "int8"}, "built with cache_dtype='fp32' but the model has cache_dtype='int8'"),
    ({"max_question_len": 20}, r"decoupled with other settings \(max_question_len\)"),
])
def test_cache_of_other_decoupling_settings_is_refused(fp32_build, fp32_model, tokenizer, override, message):
    model = DecoupledModel.from_pretrained(fp32_model, **override)
    with pytest.raises(CacheError, match=message):
        cached_state_provider(fp32_build["out"], model, features(tokenizer))


def test_cache_of_other_windowing_is_refused(fp32_build, fp32_model, tokenizer):
    model = DecoupledModel.from_pretrained(fp32_model)
    with pytest.raises(CacheError, match=f"built with doc_stride={STRIDE} but this run uses doc_stride=8"):
        cached_state_provider(fp32_build["out"], model, features(tokenizer, doc_stride=8), doc_stride=8)
    with pytest.raises(CacheError, match=f"built with max_passage_len={P} but this run uses max_passage_len=40"):
        cached_state_provider(fp32_build["out"], model, features(tokenizer, max_passage_len=40))
    # Without doc_stride the windows themselves give the mismatch away.
    with pytest.raises(CacheError, match="has no window|holds other tokens"):
        provider = cached_state_provider(fp32_build["out"], model, features(tokenizer, doc_stride=30))
        evaluate_qa(model, features(tokenizer, doc_stride=30), passage_states=provider)


def test_tampered_manifest_is_refused(fp32_build, fp32_model, tokenizer, tmp_path):
    shutil.copytree(fp32_build["out"], tmp_path / "cache")
    manifest = json.loads((tmp_path / "cache" / MANIFEST).read_text())
    manifest["model"]["weights_sha256"] = "0" * 64
    manifest["model"]["sha256"] = "0" * 64
    (tmp_path / "cache" / MANIFEST).write_text(json.dumps(manifest))
    model = DecoupledModel.from_pretrained(fp32_model)
    with pytest.raises(CacheError, match="other weights"):
        PassageCache(tmp_path / "cache").check_model(model)
    (tmp_path / "cache" / MANIFEST).write_text("{not json")
    with pytest.raises(CacheError, match="manifest.json: malformed JSON"):
        verify_cache(tmp_path / "cache")


def test_incomplete_cache_is_refused(fp32_build, fp32_model, tmp_path):
    shutil.copytree(fp32_build["out"], tmp_path / "cache")
    manifest = json.loads((tmp_path / "cache" / MANIFEST).read_text())
    manifest["shards"], manifest["complete"] = manifest["shards"][:2], False
    (tmp_path / "cache" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CacheError, match=r"incomplete \(2 of 4 shards\)"):
        PassageCache(tmp_path / "cache").check_model(DecoupledModel.from_pretrained(fp32_model))
    assert "incomplete: 2 of 4 shards" in verify_cache(tmp_path / "cache").problems[0]


def test_build_into_a_cache_of_other_settings_is_refused(fp32_build, fp32_model, tmp_path):
    # Refused before any encoding: the manifest comparison happens on the driver.
    with pytest.raises(CacheError, match=r"holds a cache built differently \(.*doc_stride"):
        build_cache(dataclasses.replace(options(fp32_model, fp32_build["out"]), doc_stride=8))
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CacheError, match="is not empty and holds no manifest.json"):
        build_cache(options(fp32_model, tmp_path))


def test_model_with_random_weights_is_refused(local_ray, tmp_path, tokenizer):
    # A bare encoder gets a random QA head on every load, so no actor can reproduce the driver's states.
    hf_config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    transformers.BertModel(hf_config).save_pretrained(tmp_path / "encoder")
    tokenizer.save_pretrained(tmp_path / "encoder")
    with pytest.raises(CacheError, match="loading it twice gives different weights"):
        build_cache(options(tmp_path / "encoder", tmp_path / "cache", split=1))


def test_corpus_loader_reports_every_skipped_record(tmp_path):
    lines = [
        json.dumps({"id": "a", "text": "Alpha is first."}),
        json.dumps({"id": "b", "text": ""}),
        "{broken",
        json.dumps({"text": "no id"}),
        json.dumps({"id": "a", "text": "again"}),
        json.dumps({"id": 7, "text": "Seven is a number."}),
    ]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n")
    passages, report = load_passages(str(path))
    assert [p.id for p in passages] == ["a", "7"]
    assert (report.kept, report.skipped) == (2, 4)
    assert report.problems == [
        "corpus.jsonl: example b: field 'text' is missing or empty; give the record its passage text",
        "corpus.jsonl: example line 3: field 'line' is malformed JSON (Expecting property name enclosed in double "
        "quotes at column 2); fix the line",
        "corpus.jsonl: example line 4: field 'id' is missing; give every record a unique id",
        "corpus.jsonl: example a: field 'id' repeats an earlier record; make ids unique",
    ]
    pq.write_table(pa.table({"id": ["x"], "body": ["y"]}), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="bad.parquet: columns .* lack 'id' and/or 'text'"):
        load_passages(str(tmp_path / "bad.parquet"))


def test_build_options_name_the_bad_field():
    with pytest.raises(ValueError, match="rows_per_shard=0 must be >= 1"):
        CacheBuildOptions(model="m", data="d", out="o", rows_per_shard=0)
    with pytest.raises(ValueError, match="doc_stride=47 is the overlap between windows; use 0 to 46"):
        CacheBuildOptions(model="m", data="d", out="o", max_passage_len=48, doc_stride=47)


def test_eval_cli_from_cache_equals_live_eval(fp32_build, fp32_model, capsys):
    """`decouple eval --cache` takes split and windowing from the manifest and scores exactly like the live path."""
    common = ["eval", "--model", str(fp32_model), "--data", DATA, "--json", "--batch-size", "8"]
    assert main([*common, "--max-passage-len", str(P), "--doc-stride", str(STRIDE)]) == 0
    live = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main([*common, "--cache", str(fp32_build["out"])]) == 0
    cached = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert live["split"] == cached["split"] == 1
    assert (cached["exact_match"], cached["f1"], cached["examples"]) == (live["exact_match"], live["f1"], live["examples"])
