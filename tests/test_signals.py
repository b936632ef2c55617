"""SIGINT and SIGTERM stop `decouple train`, `sweep`, `cache build` and `augment` cleanly (issue 34): exit 130 / 143,
one line that says what was kept and the exact command that resumes, the MLflow runs marked KILLED, no native stack
dump or traceback, and no Ray process left behind. Before, SIGTERM aborted train with Ray's native stack dump (exit
134) and SIGINT exited 1 without a word; SIGINT to a sweep was Tune's own and the sweep went on to exit 0."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import tiny_bert_config

REPO = Path(__file__).parents[1]


def ray_processes(session_marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in out if session_marker in line and ("raylet" in line or "gcs_server" in line)]


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_training_with_one_line_and_the_resume_command(signum, code, tiny_qa_checkpoint, tmp_path):
    out = tmp_path / "out"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["train", "--model", str(tiny_qa_checkpoint), "--data", "synthetic:articles=6", "--eval-articles", "2",
            "--max-question-len", "16", "--max-passage-len", "48", "--doc-stride", "16", "--batch-size", "8",
            "--epochs", "50", "--output-dir", str(out), "--tracking-uri", uri, "--no-progress"]
    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_ADDRESS": "local", "RAY_TMPDIR": ray_tmp}
    process = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", *args], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list(out.glob("*/epoch_001/trainer_state.json")):  # an epoch finished: something to keep
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.5)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    assert last.startswith(f"decouple train: interrupted ({name}); the last finished epoch's checkpoint is kept: ")
    assert "Traceback" not in stderr and "*** " not in stderr and "Aborted" not in stderr
    resume = shlex.split(last.split("resume with: ", 1)[1])
    assert resume[:2] == ["decouple", "train"] and resume[-2] == "--resume-from"
    assert (Path(resume[-1]) / "trainer_state.json").is_file() and resume[1:-2] == args
    (run,) = MlflowClient(uri).search_runs(MlflowClient(uri).search_experiments()[0].experiment_id)
    assert run.info.status == "KILLED"
    time.sleep(2)
    assert ray_processes(ray_tmp) == []  # the command's own Ray is gone
    shutil.rmtree(ray_tmp, ignore_errors=True)


def start(args: list[str], tmp_path: Path, *, driver: str | None = None) -> tuple[subprocess.Popen, str]:
    """``decouple ARGS`` in a process of its own with its own Ray (``driver``: Python code run instead of the bare
    CLI, ending in a call of it); returns the process and the marker of its Ray's processes."""
    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_ADDRESS": "local", "RAY_TMPDIR": ray_tmp}
    command = ["-c", driver, *args] if driver else ["-m", "orchestrator.cli", *args]
    process = subprocess.Popen([sys.executable, *command], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    return process, ray_tmp


def stopped(process: subprocess.Popen, ray_tmp: str, code: int) -> str:
    """The process's last stderr line, once it ended with ``code`` with no traceback or native dump and left no Ray
    process behind."""
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr and "*** " not in stderr and "Aborted" not in stderr, stderr[-3000:]
    time.sleep(2)
    assert ray_processes(ray_tmp) == []
    shutil.rmtree(ray_tmp, ignore_errors=True)
    return stderr.strip().splitlines()[-1]


def test_sigint_stops_a_sweep_with_its_runs_killed_and_the_command_that_continues_it(tiny_qa_checkpoint,
                                                                                  tiny_qa_teacher, tmp_path):
    """SIGINT was Tune's own: it stopped the trials and the sweep went on to summarise, exit 0, its MLflow runs left
    RUNNING. Now it ends the Tune run gracefully (its state saved) and the sweep stops with 130."""
    from tests.test_sweep import sweep_args, tiny_space

    storage = tmp_path / "storage"
    args = sweep_args(tiny_space(tmp_path, "stopped", num_samples=2), storage, tiny_qa_checkpoint,
                      "--teacher", str(tiny_qa_teacher), "--max-concurrent", "1")
    process, ray_tmp = start(args, tmp_path)
    deadline = time.monotonic() + 240
    while not list((storage / "train").glob("stopped-smoke-*/*/")):  # the first trial's Ray Train run started
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    last = stopped(process, ray_tmp, 130)
    assert last == (f"decouple sweep: interrupted (SIGINT); its finished trials and Tune's state are kept under "
                    f"{storage}; continue it with: decouple {shlex.join(args)} --resume")
    assert list((storage / "stopped-smoke").glob("experiment_state-*.json"))
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("decoupled-sweep").experiment_id])
    assert runs and {run.info.status for run in runs} == {"KILLED"}  # the sweep's and its started trial's


def test_trial_runs_the_stop_failed_are_marked_killed_and_earlier_failures_kept(tmp_path):
    """The race behind a red CI, both ways round: a trial whose training the stop ended marks its own run FAILED
    before or after the driver marks what is left. A run failed after the signal came is the stop's (KILLED), one
    failed before stays FAILED; a trial failing a run the driver marked KILLED leaves it KILLED."""
    from orchestrator.interrupt import Interrupted
    from orchestrator.sweep.tracking import mark_stopped
    from orchestrator.sweep.trial import SweepTrialSteps
    from orchestrator.tracking import PARENT_RUN_TAG

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e")
    parent = client.create_run(experiment).info.run_id
    trials = {name: client.create_run(experiment, tags={PARENT_RUN_TAG: parent}).info.run_id
              for name in ("failed_before", "failed_by_stop", "running", "finished")}
    client.set_terminated(trials["failed_before"], "FAILED")
    client.set_terminated(trials["finished"], "FINISHED")
    signalled = time.time()
    time.sleep(0.01)
    client.set_terminated(trials["failed_by_stop"], "FAILED")
    mark_stopped(client.tracking_uri, parent, Interrupted(signal.SIGINT, at=signalled))
    status = {name: client.get_run(run).info.status for name, run in trials.items()}
    assert status == {"failed_before": "FAILED", "failed_by_stop": "KILLED", "running": "KILLED",
                      "finished": "FINISHED"}
    assert client.get_run(parent).info.status == "KILLED"
    mark_stopped(client.tracking_uri, parent, RuntimeError("an error, not a signal"))  # nothing failed is re-marked
    assert client.get_run(trials["failed_by_stop"]).info.status == "KILLED"
    # The other order: the trial fails after the driver marked it KILLED, and leaves it so; a running one FAILS.
    steps = SweepTrialSteps("s", client.tracking_uri, "e", parent)
    steps.fail(trials["running"])
    late = client.create_run(experiment, tags={PARENT_RUN_TAG: parent}).info.run_id
    steps.fail(late)
    assert (client.get_run(trials["running"]).info.status, client.get_run(late).info.status) == ("KILLED", "FAILED")


CACHE_DRIVER = """
import os, signal, sys
from trainables.cache import assembly
from orchestrator.cli import main

write = assembly.write_manifest
def written(out, manifest):  # the first shard is recorded: the command is told to stop, as by `kill`
    write(out, manifest)
    if manifest.shards:
        os.kill(os.getpid(), signal.SIGTERM)
assembly.write_manifest = written
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_stops_a_cache_build_that_the_same_command_finishes(tokenizer, tmp_path, capsys):
    """SIGTERM once the build recorded its first shard: exit 143, the shards kept, Ray stopped; the same command
    then finishes the cache (here, encoding in this process: tests/test_hostile_cache.py's `without_ray`), writing
    only the missing shards."""
    from orchestrator.cli import main
    from tests.test_hostile_cache import build_args, save_tiny_model, without_ray

    out = tmp_path / "cache"
    args = build_args(save_tiny_model(tmp_path / "model", tokenizer), out)
    process, ray_tmp = start(args, tmp_path, driver=CACHE_DRIVER)
    last = stopped(process, ray_tmp, 143)
    assert last == (f"decouple cache: interrupted (SIGTERM); the shards it finished are kept in {out}; finish the "
                    f"cache with the same command: decouple {shlex.join(args)}")
    kept = len(json.loads((out / "manifest.json").read_text())["shards"])
    assert 1 <= kept < 4
    with pytest.MonkeyPatch.context() as patch:
        without_ray(patch)
        assert main(shlex.split(last.split("same command: decouple ", 1)[1])) == 0
    assert f"({4 - kept} written, {kept} kept)" in capsys.readouterr().out


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_augment_with_nothing_written(signum, code, tokenizer, tmp_path, monkeypatch, capsys):
    """In this process (augment runs no Ray): the signal arrives while the new pairs are being found."""
    from orchestrator.cli import main
    from tests.test_augment_pairs import ROWS
    from trainables.data import neighbour_pairs
    from trainables.model.config import DecoupledConfig
    from trainables.model.decoupled import DecoupledModel

    data, teacher, out = tmp_path / "pairs.tsv", tmp_path / "teacher", tmp_path / "more.tsv"
    data.write_text("\n".join(["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"] + [
        f"{label}\t{2 * n}\t{2 * n + 1}\t{s1}\t{s2}" for n, (label, s1, s2) in enumerate(ROWS)]) + "\n")
    model = DecoupledModel.from_hf_config(tiny_bert_config(), DecoupledConfig(task="pair", max_question_len=24))
    model.tokenizer = tokenizer
    model.save_pretrained(teacher)
    find = neighbour_pairs.neighbour_pairs

    def signalled(*a, **k):
        os.kill(os.getpid(), signum)
        return find(*a, **k)

    monkeypatch.setattr(neighbour_pairs, "neighbour_pairs", signalled)
    args = ["augment", "--data", str(data), "--teacher", str(teacher), "--output", str(out)]
    capsys.readouterr()
    assert main(args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"decouple augment: interrupted ({signal.Signals(signum).name}); nothing was written to {out} (it "
                   f"is written whole, at the end); run the command again: decouple {shlex.join(args)}"]
    assert not out.exists() and not list(tmp_path.glob(".writing-*"))
