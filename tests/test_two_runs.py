"""Two `decouple train` at once against one existing sqlite store (issue 34, item 7): both succeed, and neither
console shows a library traceback. Before, Ray Train's controller printed a `GetTimeoutError` traceback ("Failed to
send resource request") on a run that then succeeded: its first request to Ray's AutoscalingCoordinator also created
that actor, which on a busy machine took longer than the 5 s the controller waits (`orchestrator.train.
coordinator_ready` now has it answering first). The traceback came with load, not every time: the two runs here
guard the console, and the second test what the fix does."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from orchestrator.tracking import ready_store

REPO = Path(__file__).parents[1]


def test_two_trainings_at_once_on_one_store_print_no_traceback(tiny_qa_checkpoint, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ready_store(uri)  # an existing store: creating one at once is test_tracking_uri's
    runs, ray_tmps = [], []
    for n in (1, 2):
        ray_tmps.append(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
        args = ["train", "--model", str(tiny_qa_checkpoint), "--data", "synthetic:articles=6", "--eval-articles",
                "2", "--max-question-len", "16", "--max-passage-len", "48", "--doc-stride", "16", "--batch-size", "8",
                "--epochs", "1", "--max-train-examples", "16", "--output-dir", str(tmp_path / f"out{n}"),
                "--tracking-uri", uri, "--no-progress"]
        runs.append(subprocess.Popen([sys.executable, "-m", "orchestrator.cli", *args], cwd=REPO, text=True,
                                     env={**os.environ, "RAY_ADDRESS": "local", "RAY_TMPDIR": ray_tmps[-1]},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for process in runs:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stderr and "Error" not in stderr, stderr[-3000:]
        assert "trained teacher" in stdout
    for folder in ray_tmps:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_coordinator_answers_before_ray_train_asks(local_ray):
    """What the fix does, on the session's Ray: the actor Ray Train's controller asks first exists and answers."""
    import ray

    from orchestrator.train import coordinator_ready

    coordinator_ready()
    coordinator = ray.get_actor("AutoscalingCoordinator", namespace="AutoscalingCoordinator")
    assert ray.get(coordinator.get_reserved_resources.remote("decouple-ready"), timeout=5) is not None
