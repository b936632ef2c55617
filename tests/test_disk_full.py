"""A disk that fills mid-run (issue 34, item 4), through the real CLI on a small tmpfs: `cache build`, `train` and
`sweep` end with exit 2 and one line naming what could not be written and what was kept, with no traceback; nothing
half-written is left under a name that looks complete; once space is freed (the tmpfs grown), the command the line
gives finishes the work. Before, a shard or checkpoint write ended in an `OSError: [Errno 28]` traceback (train: a
Ray worker's, twice, with the epoch folder left half-copied, trainer_state.json included), and a sweep retried every
trial into the same full disk and then exited 0 with no finished trial."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.test_hostile_cache import build_args, save_tiny_model, without_ray
from tests.test_sweep import sweep_args, tiny_space

REPO = Path(__file__).parents[1]
NO_SPACE = "error: no space left on the device to write "


@pytest.fixture(autouse=True)
def one_line_errors(monkeypatch):
    monkeypatch.delenv("DECOUPLE_DEBUG", raising=False)  # the debug switch re-raises with a traceback


class SmallDisk:
    """A tmpfs mounted for one test, grown by `free` (root in a sandbox may mount; elsewhere the test is skipped)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def mount(self, size: str) -> None:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.folder)],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small file system here: {done.stderr.decode().strip()}")

    def free(self, size: str = "64m") -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.folder)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "disk"
    folder.mkdir()
    disk = SmallDisk(folder)
    yield disk
    # Lazily: a process of the test may still hold a file there (MLflow keeps its sqlite store open).
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines, err[-3000:]
    assert lines[-1].startswith(f"decouple {command}: {NO_SPACE}"), err[-3000:]
    return lines[-1]


def leftovers(folder: Path) -> list[str]:
    """Temporary names of unfinished writes (a shard's, a checkpoint folder's)."""
    return [p.name for p in folder.rglob("*") if ".writing" in p.name or p.name.startswith(".epoch")]


def test_cache_build_on_a_full_disk_keeps_its_shards_and_finishes_later(small_disk, tokenizer, tmp_path, capsys):
    """The builds encode in this process (tests/test_hostile_cache.py's `without_ray`): what is tested is how the
    driver writes. 160 KiB hold the manifest and two of the four ~70 KB shards."""
    model = save_tiny_model(tmp_path / "model", tokenizer)
    small_disk.mount("160k")
    out = small_disk.folder / "cache"
    args = build_args(model, out)
    with pytest.MonkeyPatch.context() as patch:
        without_ray(patch)
        assert main(args) == 2
        line = one_error_line(capsys.readouterr().err, "cache")
        assert f"write {out}/shard-00002.parquet (free some space first); the shards it finished are kept in {out}; " \
               "finish the cache with the same command: decouple cache build " in line
        assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shard-00000.parquet", "shard-00001.parquet"]

        small_disk.free()
        assert main(shlex.split(line.split("same command: decouple ", 1)[1])) == 0
    assert "(2 written, 2 kept)" in capsys.readouterr().out
    assert main(["cache", "verify", str(out)]) == 0 and leftovers(out) == []


def test_train_on_a_full_disk_keeps_its_last_epoch_and_resumes(small_disk, tiny_qa_checkpoint, local_ray, tmp_path,
                                                               capsys):
    """20 MiB hold one epoch checkpoint of the tiny model (12.8 MB with its optimizer state), not two. The first run
    is a process of its own (its console, workers' lines included, is the point); the resume runs here."""
    small_disk.mount("20m")
    out = small_disk.folder / "out"
    args = ["train", "--model", str(tiny_qa_checkpoint), "--data", "synthetic:articles=6", "--eval-articles", "2",
            "--max-question-len", "16", "--max-passage-len", "48", "--doc-stride", "16", "--batch-size", "8",
            "--epochs", "2", "--output-dir", str(out), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--no-progress"]
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "RAY_ADDRESS": "local"}, timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    line = one_error_line(done.stderr, "train")
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    assert f"write {run}/epoch_002 (free some space first); the last finished epoch's checkpoint is kept: " \
           f"{run}/epoch_001; resume with: decouple train " in line
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["epoch_001"] and leftovers(out) == []

    small_disk.free()
    assert main(shlex.split(line.split("resume with: decouple ", 1)[1])) == 0
    assert (out / "config.json").is_file() and "trained teacher" in capsys.readouterr().out


def test_sweep_on_a_full_disk_stops_at_once_and_resumes(small_disk, tiny_qa_checkpoint, tiny_qa_teacher, local_ray,
                                                        tmp_path, capfd):
    """A one-trial sweep whose storage (MLflow store, Tune state, the trial's checkpoints) is an 8 MiB disk: the
    store and the sweep's state fit, the trial's epoch checkpoint does not. The sweep stops at the first such
    failure (no retry), and --resume finishes it once space is freed."""
    small_disk.mount("8m")
    storage = small_disk.folder / "storage"
    args = sweep_args(tiny_space(tmp_path, "full", num_samples=1), storage, tiny_qa_checkpoint,
                      "--teacher", str(tiny_qa_teacher))
    assert main(args) == 2
    line = one_error_line(capfd.readouterr().err, "sweep")
    assert f"write {storage}/train/full-smoke-" in line and "/epoch_001 (free some space first); its finished " \
        f"trials and Tune's state are kept under {storage}; continue it with: decouple sweep " in line
    assert line.endswith(" --resume") and leftovers(storage) == []

    small_disk.free()
    assert main(shlex.split(line.split("continue it with: decouple ", 1)[1])) == 0
    assert "sweep full-smoke: 1 finished trials" in capfd.readouterr().out


def test_a_store_that_could_not_be_created_is_removed_and_named(small_disk):
    """The issue's `sweep --storage` on a full disk: MLflow's sqlite store could not be created (a 110-line
    SQLAlchemy traceback). The command's line names the store, and the half-made store is removed: left, every
    later command failed on "table ... already exists"."""
    from orchestrator.disk_full import disk_full
    from orchestrator.tracking import ready_store

    small_disk.mount("300k")
    uri = f"sqlite:///{small_disk.folder / 'mlflow.db'}"
    with pytest.raises(Exception) as caught:
        ready_store(uri)
    assert disk_full(caught.value) == ("no space left on the device to write the MLflow store (sqlite: database or "
                                       "disk is full)")
    assert not (small_disk.folder / "mlflow.db").exists()
    small_disk.free()  # the next command (a process of its own: MLflow keeps this one's connection) creates it
    subprocess.run([sys.executable, "-c", f"from orchestrator.tracking import ready_store; ready_store({uri!r})"],
                   cwd=REPO, check=True, capture_output=True)
    assert (small_disk.folder / "mlflow.db").stat().st_size > 0
