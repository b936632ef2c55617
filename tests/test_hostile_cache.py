"""Passage caches under hostile conditions, through the real CLI (issue 34): a manifest that names files outside its
cache or contradicts itself, a finished cache re-run (on a read-only disk too), two builds into one --out.

The builds here encode in this process (`encode_here`) instead of on Ray Data actors: what is tested is what the
driver does around the encoding (the manifest, the lock, what it writes), and the real pipeline is test_cache's.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import transformers

from orchestrator.cli import main
from trainables.cache.format import MANIFEST
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel

DATA = "synthetic:articles=2"  # 8 passages
Q, P, STRIDE, ROWS_PER_SHARD = 16, 48, 16, 8
FIX = "rebuild the cache into an empty directory"


@pytest.fixture(autouse=True)
def one_line_errors(monkeypatch):
    monkeypatch.delenv("DECOUPLE_DEBUG", raising=False)  # the debug switch re-raises with a traceback


def encode_here(plan, rows, options, identity_sha256, blocks):
    """`orchestrator.cache_build.encode_rows` without Ray: the same `PassageEncoder` call, in this process."""
    from trainables.cache.encoder import PassageEncoder, load_model

    encoder = PassageEncoder.__new__(PassageEncoder)  # its __init__ asks Ray for the actor's GPUs
    encoder.device, encoder.model = torch.device("cpu"), load_model(options.model, options.model_overrides()).eval()
    for lo in range(0, len(rows), options.batch_size):
        part = rows[lo:lo + options.batch_size]
        yield encoder({"row": part, "input_ids": plan.input_ids[part], "length": plan.lengths[part]})


def without_ray(patch) -> None:
    patch.setattr("orchestrator.cache_build.encode_rows", encode_here)
    patch.setattr("orchestrator.cache_build.ray_session", lambda *a, **k: contextlib.nullcontext())


def save_tiny_model(path: Path, tokenizer) -> Path:
    """A random split-1 QA student (3 layers, 32 wide, Q = 16) saved with the MiniLM tokenizer."""
    torch.manual_seed(0)
    hf_config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    model = DecoupledModel.from_hf_config(hf_config, DecoupledConfig(split=1, max_question_len=Q))
    model.tokenizer = tokenizer
    model.save_pretrained(path)
    return path


def build_args(model_dir: Path, out: Path) -> list[str]:
    return ["cache", "build", "--model", str(model_dir), "--data", DATA, "--out", str(out), "--rows-per-shard",
            str(ROWS_PER_SHARD), "--batch-size", "8", "--max-passage-len", str(P), "--doc-stride", str(STRIDE)]


def build(model_dir: Path, out: Path) -> Path:
    """A finished 4-shard cache of `DATA` by ``model_dir`` in ``out``, built through the CLI."""
    with pytest.MonkeyPatch.context() as patch:
        without_ray(patch)
        assert main(build_args(model_dir, out)) == 0
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"), tokenizer)


@pytest.fixture(scope="module")
def built(model_dir, tmp_path_factory) -> Path:
    return build(model_dir, tmp_path_factory.mktemp("built") / "cache")


@pytest.fixture
def cli(capsys, caplog):
    """Run ``decouple ARGS`` in this process; returns (exit code, stdout, stderr), never with a traceback."""
    def call(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return call


def refused(cli, *argv: str) -> str:
    """The one error line of a command that must exit 2, without its ``decouple <command>: error:`` prefix. Before it
    may come only the command's own ``[command] using ...`` lines (eval says which settings it took from where)."""
    code, _, err = cli(*argv)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(f"[{argv[0]}] using ")]
    assert code == 2 and len(lines) == 1, err
    prefix = f"decouple {argv[0]}: error: "
    assert lines[0].startswith(prefix)
    return lines[0].removeprefix(prefix)


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its inode and modification time: unchanged when nothing was written."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def edited_copy(built: Path, target: Path, edit) -> Path:
    """A copy of the cache whose manifest ``edit`` (a function of its JSON object) changed."""
    shutil.copytree(built, target)
    manifest = json.loads((target / MANIFEST).read_text())
    edit(manifest)
    (target / MANIFEST).write_text(json.dumps(manifest))
    return target


def readers(model_dir: Path, cache: Path) -> list[list[str]]:
    """Every command that reads a cache, pointed at ``cache``."""
    return [["cache", "verify", str(cache)],
            ["eval", "--model", str(model_dir), "--data", DATA, "--cache", str(cache)],
            ["answer", "--model", str(model_dir), "--cache", str(cache), "--question", "Who?"],
            build_args(model_dir, cache)]


# ---- a cache is self-contained ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["{outside}", "../outside.parquet", "sub/shard-00001.parquet", "shard-1.parquet",
                                  "notes.parquet"])
def test_a_shard_entry_outside_the_cache_is_refused_by_every_reader(cli, built, model_dir, tmp_path, name):
    """Before: an absolute shard path outside the cache passed `cache verify` ('ok'), `eval --cache` read that
    outside file, and a re-run of the build failed with "invalid literal for int()"."""
    outside = tmp_path / "outside.parquet"
    shutil.copy(built / "shard-00001.parquet", outside)
    name = name.format(outside=outside)

    def point_outside(manifest: dict) -> None:
        manifest["shards"][1]["file"] = name  # size and sha256 still match the file it names

    cache = edited_copy(built, tmp_path / "cache", point_outside)
    before = tree(tmp_path)
    for argv in readers(model_dir, cache):
        assert refused(cli, *argv) == (f"{cache}/{MANIFEST}: shard entry {name!r} is not a shard file of this cache "
                                       f"(shard-NNNNN.parquet, beside the manifest); {FIX}")
    assert tree(tmp_path) == before


def test_a_shard_entry_of_the_wrong_type_is_refused(cli, built, tmp_path):
    cache = edited_copy(built, tmp_path / "cache", lambda m: m["shards"][0].update(rows="8"))
    assert refused(cli, "cache", "verify", str(cache)) == (
        f"{cache}/{MANIFEST}: shard entry 'shard-00000.parquet' has rows of the wrong type; {FIX}")


@pytest.mark.parametrize("key, value", [("split", 2), ("compression_ratio", 2), ("cache_dtype", "int8")])
def test_a_manifest_that_contradicts_itself_is_refused(cli, built, model_dir, tmp_path, key, value):
    """Before: `cache verify` said 'ok' for a top-level split that contradicts the manifest's own model identity,
    a cache every reader then refused, naming the model as the culprit."""
    cache = edited_copy(built, tmp_path / "cache", lambda m: m.update({key: value}))
    before = tree(tmp_path)
    model_value = json.loads((built / MANIFEST).read_text())["model"]["decoupled"][key]
    for argv in readers(model_dir, cache):
        assert refused(cli, *argv) == (
            f"{cache}/{MANIFEST}: {key}={value!r} but its model identity says {key}={model_value!r} "
            f"(model.decoupled); the manifest contradicts itself: {FIX}")
    assert tree(tmp_path) == before


def test_a_model_identity_without_its_parts_is_refused_by_readers(cli, built, model_dir, tmp_path):
    cache = edited_copy(built, tmp_path / "cache", lambda m: m["model"].pop("hf_config"))
    assert refused(cli, "eval", "--model", str(model_dir), "--data", DATA, "--cache", str(cache)) == (
        f"cache {cache}: its manifest's model identity lacks hf_config; rebuild the cache with `decouple cache "
        "build` into an empty directory")
    cache = edited_copy(built, tmp_path / "other", lambda m: m.update(model="m"))
    assert refused(cli, "cache", "verify", str(cache)) == (
        f"{cache}/{MANIFEST}: model is not an object (the model identity); {FIX}")


def test_the_built_cache_verifies(cli, built):
    code, out, _ = cli("cache", "verify", str(built))
    assert code == 0 and f"{built}: ok: 4 shards" in out


# ---- a finished cache's re-run writes nothing ------------------------------------------------------------------------
def test_a_rerun_of_a_finished_cache_writes_nothing(cli, built, model_dir, tmp_path, monkeypatch):
    """Before: it rewrote manifest.json."""
    without_ray(monkeypatch)
    cache = tmp_path / "cache"
    shutil.copytree(built, cache)
    before = tree(cache)
    code, out, _ = cli(*build_args(model_dir, cache))
    assert code == 0 and "in 4 shards (0 written, 4 kept)" in out
    assert tree(cache) == before


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs mounted for the test, and a function that remounts it read-only (root in a sandbox may mount;
    elsewhere the test is skipped)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a file system here: {mounted.stderr.decode().strip()}")
    yield folder, lambda: subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    subprocess.run(["umount", str(folder)], check=True)


def test_a_finished_cache_on_a_read_only_disk_reruns_without_writing(cli, built, model_dir, tmpfs, monkeypatch):
    """Before: the re-run rewrote manifest.json and died on 'Read-only file system'; since the early writability
    check, it was refused as a read-only --out although it had nothing to write."""
    without_ray(monkeypatch)
    disk, read_only = tmpfs
    shutil.copytree(built, disk / "cache")
    shutil.copytree(built, disk / "unfinished")
    manifest = json.loads((disk / "unfinished" / MANIFEST).read_text())
    manifest["shards"], manifest["complete"] = manifest["shards"][:2], False
    (disk / "unfinished" / MANIFEST).write_text(json.dumps(manifest))
    shutil.copytree(built, disk / "damaged")
    (disk / "damaged" / "shard-00002.parquet").write_bytes(b"PAR1 damaged")
    read_only()
    before = tree(disk)
    code, out, _ = cli(*build_args(model_dir, disk / "cache"))
    assert code == 0 and "in 4 shards (0 written, 4 kept)" in out
    for name in ("unfinished", "damaged"):  # these have shards to write: refused in one line, before any encoding
        assert refused(cli, *build_args(model_dir, disk / name)) == (
            f"out='{disk / name}': cannot write there: a read-only file system or no permission; pass a writable "
            "location")
    assert tree(disk) == before


# ---- two builds into one --out ---------------------------------------------------------------------------------------
def test_a_second_build_into_the_same_out_is_refused_while_the_first_runs(cli, capsys, model_dir, tmp_path,
                                                                          monkeypatch):
    """Before: both encoded every shard, and each deleted the other's temporary files as stale."""
    out, second = tmp_path / "cache", {}

    def encode_and_meanwhile_start_another(*args):
        batches = encode_here(*args)
        yield next(batches)  # the first build is under way: its manifest is written, a shard may be in flight
        capsys.readouterr()
        before = tree(out)
        second["code"] = main(build_args(model_dir, out))
        second["out"], second["err"] = capsys.readouterr()
        second["untouched"] = tree(out) == before
        yield from batches

    monkeypatch.setattr("orchestrator.cache_build.encode_rows", encode_and_meanwhile_start_another)
    monkeypatch.setattr("orchestrator.cache_build.ray_session", lambda *a, **k: contextlib.nullcontext())
    code, _, _ = cli(*build_args(model_dir, out))
    assert code == 0
    assert second["code"] == 2 and "Traceback" not in second["err"] and second["err"].splitlines() == [
        f"decouple cache: error: --out {out}: another `decouple cache build` is writing this cache now; wait for it to "
        "end, then rerun this command to finish or reuse what it wrote"]
    assert second["untouched"]
    code, verified, _ = cli("cache", "verify", str(out))
    assert code == 0 and ": ok: 4 shards" in verified
