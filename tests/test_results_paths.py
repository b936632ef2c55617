"""results.json is re-runnable elsewhere: the command reads ``decouple ...`` however the sweep was started, and no
local path in it is absolute (those under the working directory are relative to it, others relative with ``../``),
while the data keep their sizes and sha256. The plots and the environment are stubbed: no torch, Ray or MLflow."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import types
from pathlib import Path

import pytest

from orchestrator.sweep.results import command_line, write_results

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("program", ["/opt/env/bin/decouple", "decouple", str(REPO / "orchestrator" / "cli.py"),
                                     "orchestrator/cli.py", "/elsewhere/copy/orchestrator/cli.py"])
def test_the_command_is_recorded_as_decouple_however_it_was_started(program, monkeypatch):
    monkeypatch.setattr(sys, "argv", [program, "sweep", "split", "--smoke"])
    assert command_line() == ["decouple", "sweep", "split", "--smoke"]


@pytest.fixture
def no_plots_nor_versions(monkeypatch):
    """`write_results` with a stand-in for the MLflow/plot module: fixed tags and a figure that saves a few bytes."""
    figure = types.SimpleNamespace(savefig=lambda buffer, **_: buffer.write(b"png"))
    stub = types.ModuleType("orchestrator.sweep.tracking")
    stub.environment_tags = lambda repo: {"git_commit": "abc"}
    stub.plot_front = stub.plot_curve = lambda *args: figure
    monkeypatch.setitem(sys.modules, "orchestrator.sweep.tracking", stub)


def _strings(value):
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_results_record_paths_relative_to_the_working_directory(no_plots_nor_versions, tmp_path, monkeypatch):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    (repo / "data").mkdir(parents=True)
    elsewhere.mkdir()
    train, held_out = repo / "data" / "train.tsv", elsewhere / "held out.tsv"
    train.write_text("a\tb\t1\n")
    held_out.write_text("c\td\t0\n")
    monkeypatch.chdir(repo)
    runs, teacher = repo / "runs", repo / "runs" / "teacher"
    record = types.SimpleNamespace(
        sweep="s", space=str(repo / "my_space.py"), teacher={"path": str(teacher), "accuracy": 75.0},
        base={"data": str(train), "eval_data": str(held_out), "model": str(elsewhere / "model"), "task": "pair",
              "output_dir": str(runs / "train"), "teacher": str(teacher), "epochs": 2, "labels": None})
    row = {"trial": "t1", "split": 1, "accuracy": 74.2, "accuracy_drop": 0.8, "speedup": 1.1, "speedup_bound": 1.09,
           "state_bytes_per_token": 1536.0, "checkpoint": str(runs / "train" / "s-t1")}
    report = types.SimpleNamespace(rows=[row], front=[row], best=row)
    command = ["decouple", "sweep", str(repo / "my_space.py"), "--data", str(train), f"--eval-data={held_out}",
               "--teacher", str(teacher), "--tracking-uri", f"sqlite:///{runs / 'mlflow.db'}",
               "--storage", "s3://bucket/sweeps", "--model", "org/name"]

    write_results(str(runs / "s"), record, report, command, wall_s=1.0)

    results = json.loads((runs / "s" / "results.json").read_text())
    assert results["command"] == ("decouple sweep my_space.py --data data/train.tsv '--eval-data=../elsewhere/held "
                                  "out.tsv' --teacher runs/teacher --tracking-uri sqlite:///runs/mlflow.db "
                                  "--storage s3://bucket/sweeps --model org/name")
    assert results["space"] == "my_space.py"
    assert results["data"]["data"] == {"source": "data/train.tsv", "bytes": 6,
                                       "sha256": hashlib.sha256(b"a\tb\t1\n").hexdigest()}
    assert results["data"]["eval_data"]["source"] == "../elsewhere/held out.tsv"
    assert results["data"]["eval_data"]["sha256"] == hashlib.sha256(b"c\td\t0\n").hexdigest()
    assert results["settings"]["model"] == "../elsewhere/model"
    assert results["settings"]["output_dir"] == "runs/train" and results["settings"]["teacher"] == "runs/teacher"
    assert results["teacher"] == {"path": "runs/teacher", "accuracy": 75.0}
    assert results["trials"][0]["checkpoint"] == "runs/train/s-t1"
    assert [s for s in _strings(results) if os.path.isabs(s) or str(tmp_path) in s] == []
