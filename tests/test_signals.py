"""SIGINT and SIGTERM stop `decouple train` cleanly (issue 34): exit 130 / 143, one line that says what was kept and
the exact command that resumes, the MLflow run marked KILLED, no native stack dump or traceback, and no Ray process
left behind. Before, SIGTERM aborted with Ray's native stack dump (exit 134) and SIGINT exited 1 without a word."""
from __future__ import annotations

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
