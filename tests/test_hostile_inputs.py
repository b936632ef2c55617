"""Hostile inputs through the real CLI: each gets one clear line (exit 2) or a reported skip, never a traceback, and
nothing is silently changed. One section per category of issue 14:

1. labels outside the known set     2. broken models     3. errors that would surface inside Ray workers
4. options checked early            5. clear messages    6. commands own their Ray     7. integrity
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForQuestionAnswering

from orchestrator.cli import main, one_line
from orchestrator.ray_session import chosen_address, local_init_args
from trainables.cache.format import (
    Manifest, ShardData, read_manifest, schema_columns, shard_schema, with_shard, write_manifest, write_shard,
)
from trainables.data.errors import DataError
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel

QA = "synthetic:articles=1"  # 24 questions
TINY_TRAIN = ["--max-question-len", "24", "--max-passage-len", "64", "--doc-stride", "16", "--epochs", "1",
              "--max-train-examples", "16", "--max-eval-examples", "8", "--no-tracking", "--no-progress"]


@pytest.fixture(autouse=True)
def one_line_errors(monkeypatch):
    monkeypatch.delenv("DECOUPLE_DEBUG", raising=False)  # the debug switch re-raises with a traceback


@pytest.fixture
def cli(capsys, caplog):
    """Run ``decouple ARGS`` in this process; returns (exit code, stdout, stderr). Our loaders' problem lines are
    logged (on the console by logging's last-resort handler; pytest captures them as records) and join stderr."""
    def call(*argv: str) -> tuple[int, str, str]:
        caplog.clear()
        code = main(list(argv))
        out, err = capsys.readouterr()
        problems = [r.getMessage() for r in caplog.records if r.name.startswith("trainables")]
        assert "Traceback" not in out + err
        return code, out, "".join(f"{line}\n" for line in problems) + err

    return call


def refused(cli, *argv: str) -> str:
    """The one stderr line of a command that must exit 2."""
    code, _, err = cli(*argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"decouple {argv[0]}: error: ")
    return lines[0]


def write(path: Path, text: str | bytes) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def pair_tsv(path: Path, stray: str | None = None, rows: int = 6) -> str:
    lines = ["index\tsentence1\tsentence2\tlabel"]
    lines += [f"{i}\tThe cat {i} sleeps.\tA cat {'rests' if i % 2 else 'runs'}.\t{i % 2}" for i in range(rows)]
    if stray is not None:
        lines.append(f"{rows}\tThe dog sleeps.\tA dog rests.\t{stray}")
    return write(path, "\n".join(lines) + "\n")


def squad_json(path: Path, prefix: bytes = b"") -> str:
    context = "Ada Lovelace was born in London."
    data = {"version": "1.1", "data": [{"title": "Ada", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Where was Ada born?", "answers": [{"text": "London", "answer_start": 25}]}]}]}]}
    return write(path, prefix + json.dumps(data).encode())


# ---- 1. labels come from a known set --------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix, stray, shown", [
    (".tsv", "7", "'7'"), (".tsv", "yes", "'yes'"), (".tsv", "1.0", "'1.0'"),
    (".jsonl", "maybe", "'maybe'"), (".jsonl", 1.5, "'1.5'"),
])
def test_a_stray_label_is_a_skipped_row_not_a_new_class(cli, tmp_path, tiny_qa_checkpoint, suffix, stray, shown):
    if suffix == ".tsv":
        data = pair_tsv(tmp_path / "pairs.tsv", stray)
    else:
        rows = [{"sentence1": f"The cat {i} sleeps.", "sentence2": "A cat rests.", "label": i % 2} for i in range(6)]
        rows.append({"sentence1": "The dog sleeps.", "sentence2": "A dog rests.", "label": stray})
        data = write(tmp_path / "pairs.jsonl", "\n".join(json.dumps(r) for r in rows))
    code, out, err = cli("eval", "--model", str(tiny_qa_checkpoint), "--data", data, "--json")
    result = json.loads(out.splitlines()[-1])
    assert code == 0 and (result["examples"], result["skipped"]) == (6, 1)
    line = f"pairs{suffix}: example " + ("6 (line 8)" if suffix == ".tsv" else "at line 7")
    assert f"{line}: field 'label' = {shown} is not one of '0', '1'" in err


def test_training_data_keeps_two_classes_despite_a_stray_label(tmp_path, tokenizer):
    """What `train` hands the model: before, a stray 7 made a checkpoint with num_labels 8."""
    from trainables.training.config import DataSpec
    from trainables.training.task_data import load_task_data

    spec = DataSpec(data=pair_tsv(tmp_path / "pairs.tsv", "7"), eval_data=None, task="pair", eval_articles=0,
                    eval_fraction=0.25, max_question_len=16, max_passage_len=16, doc_stride=4,
                    max_train_examples=None, max_eval_examples=None, seed=0, labels=None)
    data = load_task_data(spec, tokenizer)
    assert (data.num_labels, data.label_names) == (2, ("0", "1"))
    assert data.summaries[0] == "pairs.tsv: kept 6, skipped 1"


def test_labels_of_a_set_of_its_own_need_labels_option(cli, tmp_path, tiny_qa_checkpoint):
    data = write(tmp_path / "yn.jsonl", "\n".join(json.dumps({"sentence1": f"s{i}", "sentence2": "t",
                                                              "label": "yes" if i % 2 else "no"}) for i in range(6)))
    line = refused(cli, "eval", "--model", str(tiny_qa_checkpoint), "--data", data)
    assert line.endswith("yn.jsonl: labels 'no', 'yes' are not a known label set (0/1, entailment/not_entailment, "
                         "entailment/neutral/contradiction); pass every label of the file in class order, e.g. "
                         "--labels no,yes")
    code, out, _ = cli("eval", "--model", str(tiny_qa_checkpoint), "--data", data, "--labels", "no,yes",
                       "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["examples"] == 6
    assert "labels='no'" in refused(cli, "eval", "--data", data, "--labels", "no")


def test_train_refuses_labels_outside_the_given_set_before_ray(cli, tmp_path, tiny_qa_checkpoint, monkeypatch,
                                                                ray_starts):
    monkeypatch.chdir(tmp_path)
    line = refused(cli, "train", "--model", str(tiny_qa_checkpoint), "--task", "pair", "--labels", "a,b",
                   "--data", pair_tsv(tmp_path / "pairs.tsv"), *TINY_TRAIN)
    assert line.endswith("data: no usable examples (pairs.tsv: kept 0, skipped 6); the first: pairs.tsv: example 0 "
                         "(line 2): field 'label' = '0' is not one of 'a', 'b' (--labels); fix the label or remove "
                         "the row")
    assert ray_starts == []


# ---- 2. broken models ----------------------------------------------------------------------------------------------
def _broken_copy(source: Path, target: Path, file: str, payload: bytes | None, cut: int | None) -> str:
    """A copy of ``source`` whose ``file`` is replaced by ``payload`` or loses its last ``-cut`` bytes."""
    shutil.copytree(source, target)
    if payload is not None:
        (target / file).write_bytes(payload)
    if cut is not None:
        (target / file).write_bytes((target / file).read_bytes()[:cut])
    return str(target)


@pytest.fixture(scope="module")
def decoupled_checkpoint(tmp_path_factory, tokenizer) -> Path:
    """A split-1, ratio-2 student: its compressor lives in decoupled.safetensors."""
    path = tmp_path_factory.mktemp("student")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    model = DecoupledModel(BertForQuestionAnswering(config), DecoupledConfig(split=1, compression_ratio=2))
    model.tokenizer = tokenizer
    model.save_pretrained(path)
    return path


@pytest.mark.parametrize("file, payload, cut, message", [
    ("config.json", b'{"model_type": "bert", ', None, "config.json is not valid JSON (Expecting property name"),
    ("config.json", b'{"hidden_size": 32}', None, "config.json has no 'model_type'"),
    ("model.safetensors", None, -1000, "model.safetensors is truncated or corrupt (Error while deserializing header"),
    ("decoupled.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage", None,
     "decoupled.safetensors is truncated or corrupt"),
    ("decoupled.safetensors", None, -10, "decoupled.safetensors is truncated or corrupt"),
])
def test_a_broken_checkpoint_is_one_line_naming_the_file(cli, tmp_path, decoupled_checkpoint, file, payload, cut,
                                                        message):
    model = _broken_copy(decoupled_checkpoint, tmp_path / "broken", file, payload, cut)
    line = refused(cli, "eval", "--model", model, "--data", QA)
    assert f"model {model}: {message}" in line


def test_a_checkpoint_without_weights_is_named(cli, tmp_path, tiny_qa_checkpoint):
    model = tmp_path / "config-only"
    model.mkdir()
    shutil.copy(tiny_qa_checkpoint / "config.json", model)
    assert refused(cli, "eval", "--model", str(model), "--data", QA).endswith(
        f"model {model}: no weights file (model.safetensors); copy the whole checkpoint directory or save the model "
        "again")


def _offline_hub(root: Path, repo: str, checkpoint: Path) -> dict[str, str]:
    """An HF cache under ``root`` holding ``checkpoint`` as hub model ``repo``, and the environment that reads it."""
    folder = root / "hub" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(checkpoint, folder / "snapshots" / ("0" * 40))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    return {**os.environ, "HF_HOME": str(root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


REPO = Path(__file__).resolve().parents[1]


def _cli(cwd: Path, env: dict, *argv: str) -> subprocess.CompletedProcess:
    """``decouple ARGV`` in a fresh process in ``cwd``, importing this checkout's code (not whichever checkout the
    virtualenv's editable install points at)."""
    repo = str(Path(__file__).parents[1])
    env = {**env, "PYTHONPATH": os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_path_looking_name_is_never_sent_to_the_hub(tmp_path, tiny_qa_checkpoint):
    env = _offline_hub(tmp_path / "hf", "runs/techer", tiny_qa_checkpoint)
    elsewhere, project = tmp_path / "elsewhere", tmp_path / "project"
    elsewhere.mkdir()
    (project / "runs").mkdir(parents=True)
    args = ("eval", "--model", "runs/techer", "--data", QA, "--limit", "2", "--json")
    as_hub_name = _cli(elsewhere, env, *args)  # no ./runs here: a hub name, found in the offline cache
    assert as_hub_name.returncode == 0, as_hub_name.stderr
    as_path = _cli(project, env, *args)  # ./runs exists: a mistyped path, refused without asking the hub
    assert as_path.returncode == 2 and "Traceback" not in as_path.stderr
    assert as_path.stderr.strip().splitlines() == [
        "decouple eval: error: model runs/techer: no such directory; check the path ('minilm-l6', a checkpoint "
        "directory, or a hub name such as org/model)"]
    unknown = _cli(elsewhere, env, "eval", "--model", "runs/teacher", "--data", QA)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    (line,) = unknown.stderr.strip().splitlines()
    assert line == (f"decouple eval: error: model runs/teacher: not a local directory, and HF_HUB_OFFLINE is set but "
                    f"the Hugging Face cache {tmp_path / 'hf' / 'hub'} does not hold it; fetch it once with internet "
                    "(HF_HUB_OFFLINE unset), point HF_HOME at a cache that holds it, or pass a checkpoint directory")


# ---- 3. what would fail inside Ray workers fails before Ray ---------------------------------------------------------
def test_eval_articles_beyond_the_data_fail_before_ray(cli, tmp_path, tiny_qa_checkpoint, monkeypatch, ray_starts):
    monkeypatch.chdir(tmp_path)
    line = refused(cli, "train", "--model", str(tiny_qa_checkpoint), "--data", "synthetic:articles=4",
                   "--eval-articles", "100", *TINY_TRAIN)
    assert line.endswith("eval_articles=100 but data 'synthetic:articles=4' has 4 article(s); hold out 1 to 3 so the "
                         "rest trains, or pass eval_data")
    assert ray_starts == []


def test_a_ray_task_error_prints_as_its_cause():
    from ray.exceptions import RayTaskError

    cause = DataError("pairs.tsv: the file is empty; write a header line and one example per line")
    remote = "Traceback (most recent call last):\n  File \"x.py\", line 1, in evaluate\nDataError: " + str(cause)
    wrapped = RayTaskError("evaluate", remote, cause).as_instanceof_cause()
    assert isinstance(wrapped, ValueError) and len(str(wrapped).splitlines()) > 1  # what the CLI used to print
    assert one_line(wrapped) == str(cause)


# ---- 4. options checked early ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--device", "banana"], "device='banana' is unknown; use cpu or cuda (cuda:N for the N-th GPU)"),
    (["--device", "cuda:x"], "device='cuda:x' is unknown"),
    (["--max-passage-len", "1000"], "max_passage_len=1000 + max_question_len=64 = 1064 positions, beyond the 512 of "
                                    "model"),
    (["--max-passage-len", "5000"], "use a max_passage_len of at most 448"),
])
def test_eval_options_are_checked_before_any_forward(cli, tiny_qa_checkpoint, args, message):
    assert message in refused(cli, "eval", "--model", str(tiny_qa_checkpoint), "--data", QA, *args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line(cli, tiny_qa_checkpoint):
    line = refused(cli, "eval", "--model", str(tiny_qa_checkpoint), "--data", QA, "--device", "cuda")
    assert "device='cuda' but " in line
    assert line.endswith(("is a CPU-only build; use cpu, or install a CUDA build of torch",
                          "no CUDA device is visible; use cpu"))


def test_output_directories_that_are_files_are_refused(cli, tmp_path, tiny_qa_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    taken = write(tmp_path / "taken", "not a directory")
    assert refused(cli, "cache", "build", "--model", str(tiny_qa_checkpoint), "--data", QA, "--out", taken
                   ).endswith(f"out='{taken}' is a file; pass a directory (new or existing)")
    assert refused(cli, "train", "--model", str(tiny_qa_checkpoint), "--output-dir", f"{taken}/sub",
                   *TINY_TRAIN).endswith(f"output_dir='{taken}/sub' is inside {taken}, which is a file; pass a "
                                         "directory (new or existing)")
    assert refused(cli, "train", "--model", str(tiny_qa_checkpoint), "--storage-path", taken, *TINY_TRAIN
                   ).endswith(f"storage_path='{taken}' is a file; pass a directory (new or existing)")
    assert refused(cli, "sweep", "split", "--storage", taken).endswith(f"storage='{taken}' is a file; pass a "
                                                                          "directory (new or existing)")


def test_deeply_nested_json_and_yaml_are_one_line(cli, tmp_path, tiny_qa_checkpoint):
    deep = "[" * 100_000 + "]" * 100_000
    data = write(tmp_path / "deep.json", deep)
    assert refused(cli, "eval", "--model", str(tiny_qa_checkpoint), "--data", data).endswith(
        "deep.json: JSON nested too deeply to read; SQuAD JSON is a few levels deep, fix or regenerate the file")
    config = write(tmp_path / "deep.yaml", "a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert refused(cli, "train", "--config", config).endswith(
        "deep.yaml: nested too deeply to read; write a flat mapping of names to values")
    model = tmp_path / "deep-config"
    shutil.copytree(tiny_qa_checkpoint, model)
    write(model / "config.json", deep)
    assert refused(cli, "eval", "--model", str(model), "--data", QA).endswith(
        "config.json is nested too deeply; restore it from the original checkpoint")


def test_a_utf8_bom_in_squad_json_is_accepted(cli, tmp_path, tiny_qa_checkpoint):
    results = []
    for name, prefix in (("plain.json", b""), ("bom.json", b"\xef\xbb\xbf")):
        code, out, _ = cli("eval", "--model", str(tiny_qa_checkpoint), "--data",
                           squad_json(tmp_path / name, prefix), "--split", "1", "--json")
        assert code == 0
        results.append(json.loads(out.splitlines()[-1]))
    assert results[0] == {**results[1], "eval_seconds": results[0]["eval_seconds"]}


# ---- 5. clear messages -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, content, extra, message", [
    ("empty.tsv", "", [], "empty.tsv: the file is empty; write a header line, then one example per line"),
    ("blank.jsonl", "\n\n", [], 'blank.jsonl: the file is empty; write one {"sentence1": ..., "sentence2": ..., '
                                 '"label": ...} object per line'),
    ("header.tsv", "index\tsentence1\tsentence2\tlabel\n", [],
     "header.tsv: has a header line but no rows; add the examples below the header"),
    ("empty.json", "", [], 'empty.json: the file is empty; expected SQuAD JSON {"version": ..., "data": [...]}'),
    ("squad.json", None, ["--task", "pair"],
     "squad.json: pair data is read from .tsv or .jsonl files; a .json file is SQuAD QA data: use --task qa"),
    ("pairs.tsv", None, ["--task", "qa"], "pairs.tsv: a .tsv file holds sentence pairs, not SQuAD JSON; use --task "
                                          "pair (or leave --task out: .tsv/.jsonl data is read as pairs)"),
])
def test_data_files_are_named_for_what_is_wrong(cli, tmp_path, tiny_qa_checkpoint, name, content, extra, message):
    if content is not None:
        data = write(tmp_path / name, content)
    else:
        data = squad_json(tmp_path / name) if name.endswith(".json") else pair_tsv(tmp_path / name)
    assert refused(cli, "eval", "--model", str(tiny_qa_checkpoint), "--data", data, *extra).endswith(message)


def test_mrpc_label_error_names_the_values_the_file_uses(cli, tmp_path, tiny_qa_checkpoint):
    rows = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    rows += [f"{i % 2}\t{i}\t{i + 100}\tThe cat {i} sleeps.\tA cat rests." for i in range(4)] + ["7\t9\t99\tA.\tB."]
    data = write(tmp_path / "mrpc.tsv", "\n".join(rows) + "\n")
    code, out, err = cli("eval", "--model", str(tiny_qa_checkpoint), "--data", data, "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["skipped"] == 1
    assert ("mrpc.tsv: example 9_99 (line 6): field 'Quality' = '7' is not one of 0, 1 (MRPC's Quality column: "
            "0 = not_paraphrase, 1 = paraphrase); fix the label or remove the row") in err


def test_a_space_path_that_is_not_python_is_named(cli, tmp_path):
    assert refused(cli, "sweep", str(tmp_path / "my space.yaml")).endswith(
        "my space.yaml: a search space is a Python file defining SPEC (a .py path) or the name of a shipped space "
        "(split, compression, distillation, pareto); see search_spaces/split.py")


def test_cache_verify_on_a_file_or_nothing_says_so(cli, tmp_path):
    file = write(tmp_path / "notes.txt", "x")
    assert refused(cli, "cache", "verify", file).endswith(
        f"{file}: is a file, not a cache directory; pass the directory that `decouple cache build --out` wrote")
    assert refused(cli, "cache", "verify", str(tmp_path / "absent")).endswith(
        f"{tmp_path / 'absent'}: no such directory; pass the directory that `decouple cache build --out` wrote")


# ---- 6. commands own their Ray --------------------------------------------------------------------------------------
def test_without_an_address_a_local_ray_is_started_never_joined(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert chosen_address(None) == (None, "no --ray-address or RAY_ADDRESS given")
    assert chosen_address("10.0.0.1:6379") == ("10.0.0.1:6379", "--ray-address")
    monkeypatch.setenv("RAY_ADDRESS", "local")
    assert chosen_address(None) == (None, "RAY_ADDRESS=local")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")
    assert chosen_address(None) == ("10.0.0.2:6379", "RAY_ADDRESS")
    args = local_init_args(dashboard=True, num_cpus=2)
    assert args["address"] == "local"  # ray.init() without an address would join a `ray start` cluster
    port = args["dashboard_port"]
    assert args["runtime_env"]["env_vars"]["RAY_API_SERVER_ADDRESS"] == f"http://127.0.0.1:{port}"


LIBRARY_NOISE = ("Token authentication is enabled", "Started a local Ray instance", "Requesting resources",
                 "Setting up process group", "Checkpoint successfully created", "Reporting training result",
                 "Loading weights", "Writing model shards", "LOAD REPORT", "TensorBoard")
"""What a successful command used to print beside its own lines: Ray's start-up notes, Ray Train's INFO logs,
transformers' progress bars and its table of the head weights a pre-trained encoder lacks (issue 16)."""


# "train beside another Ray" is tests/test_two_runs.py's first test (merged, issue 33).


# ---- 7. integrity ----------------------------------------------------------------------------------------------------
P, C = 6, 4


def _shard(passage: str, lengths: list[int], damage: str | None = None) -> ShardData:
    """Two windows of ``passage`` as a build writes them (states zero on padding), or with one ``damage``."""
    n = len(lengths)
    real = np.arange(P)[None, :] < np.array(lengths)[:, None]
    states = np.where(real[..., None], 1.0, 0.0).astype(np.float32) * np.ones((n, P, C), np.float32)
    if damage == "nan":
        states[0, 0, 0] = np.nan
    elif damage == "padding":
        states[0, P - 1, 0] = 0.5
    offsets = np.where(real[..., None], 0, -1).astype(np.int32) * np.ones((n, P, 2), np.int32)
    return ShardData(passage_ids=[passage] * n, windows=np.arange(n), lengths=np.array(lengths),
                     input_ids=np.where(real, 7, 0), offsets=offsets, text_starts=np.zeros(n), texts=["text"] * n,
                     states=states)


def tiny_cache(folder: Path) -> Path:
    """A two-shard fp32 cache in the real on-disk format (shards and manifest written by trainables.cache.format)."""
    folder.mkdir()
    schema = shard_schema(P, C, "fp32")
    manifest = Manifest(model={"sha256": "m"}, tokenizer_sha256="t", split=1, compression_ratio=1, cache_dtype="fp32",
                        hidden_size=C, state_width=C, max_passage_len=P, doc_stride=2, rows_per_shard=2,
                        plan_sha256="p", source="test", passages=2, windows=4, columns=schema_columns(schema))
    for index, passage in enumerate(("a", "b")):
        manifest = with_shard(manifest, write_shard(folder, index, _shard(passage, [5, 3]), schema))
    write_manifest(folder, manifest)
    return folder


def _forge(cache: Path, index: int, *, data: ShardData | None = None, copy_of: int | None = None) -> None:
    """Rewrite shard ``index`` (with ``data``, or as a copy of another shard) and make its manifest entry match the
    new file: checksum, size, rows and valid tokens all agree, as after a deliberate or buggy rewrite."""
    if copy_of is not None:
        shutil.copy(cache / f"shard-{copy_of:05d}.parquet", cache / f"shard-{index:05d}.parquet")
        entry = replace(read_manifest(cache).shards[copy_of], file=f"shard-{index:05d}.parquet")
    else:
        entry = write_shard(cache, index, data, shard_schema(P, C, "fp32"))
    write_manifest(cache, with_shard(read_manifest(cache), entry))


def test_verify_decodes_shards_a_forged_manifest_cannot_hide(cli, tmp_path):
    cache = tiny_cache(tmp_path / "cache")
    code, out, _ = cli("cache", "verify", str(cache))
    assert code == 0 and f"{cache}: ok: 2 shards, 4 windows" in out
    _forge(cache, 1, copy_of=0)  # shard 1 replaced by shard 0, its manifest entry updated to match
    code, out, _ = cli("cache", "verify", str(cache))
    assert code == 1
    duplicate = "window 0 of passage a is also in shard-00000.parquet; rebuild the cache"
    assert f"{cache}/shard-00001.parquet: {duplicate}" in out


@pytest.mark.parametrize("damage, problem", [
    ("nan", "states or scales hold NaN or infinity"), ("padding", "states are not zero on padding"),
])
def test_verify_deep_decodes_every_column(cli, tmp_path, damage, problem):
    cache = tiny_cache(tmp_path / "cache")
    _forge(cache, 1, data=_shard("b", [5, 3], damage))
    code, out, _ = cli("cache", "verify", str(cache))
    assert code == 0  # checksums, schema and the key columns agree with the manifest
    code, out, _ = cli("cache", "verify", str(cache), "--deep")
    assert code == 1
    assert out.splitlines()[0] == f"{cache}/shard-00001.parquet: {problem}; delete it and rerun the build"
    assert out.splitlines()[1].startswith(f"{cache}: 1 problem(s) (deep): 2 shards")


def test_eval_of_a_model_without_a_trained_head_says_so(cli, tiny_qa_checkpoint):
    code, out, err = cli("eval", "--model", "minilm-l6", "--data", QA, "--limit", "4", "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["examples"] == 4
    assert err.strip().splitlines()[-1] == (
        "note: model minilm-l6 has no trained qa head ('qa_outputs' is not in its weights, so it starts at random): "
        "scores change from run to run; evaluate a `decouple train` checkpoint")
    code, _, err = cli("eval", "--model", str(tiny_qa_checkpoint), "--data", QA, "--limit", "4")
    assert code == 0 and "note:" not in err
