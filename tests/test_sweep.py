"""Sweeps end to end through the real CLI: a tiny random BERT (conftest), synthetic data, local Ray, sqlite MLflow.

- a 2-trial sweep killed (SIGKILL) after its first trial resumes with --resume and ends with its parent run and
  exactly one nested run per trial in MLflow, with metrics and artifacts (its teacher given: the session's
  `tiny_qa_teacher`; the sweep scored on eval data trains its own);
- a bad search space fails before Ray starts, with one line naming the file and the field.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.sweep.pareto import credited_speedup
from orchestrator.sweep.tuner import concurrent_slots

REPO = Path(__file__).parents[1]
OBJECTIVES = ("accuracy", "accuracy_drop", "speedup", "speedup_bound", "state_bytes_per_token")
DATA = "synthetic:articles=10"
SETTINGS = '{"max_question_len": 24, "max_passage_len": 64, "doc_stride": 32, "batch_size": 16, "lr": 1e-3}'


def write_space(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def tiny_space(folder: Path, name: str, num_samples: int, epochs: int = 1, batch_size: int = 16,
               max_train_examples: int = 48, max_eval_examples: int = 24) -> Path:
    """Students at every split of a 2-layer model, short sequences, ``num_samples`` smoke trials."""
    settings = {**json.loads(SETTINGS), "batch_size": batch_size}
    return write_space(folder, name, f"""
        from search_spaces.base import SmokeSize, SweepSpec

        def define(trial, target):
            trial.suggest_int("split", 1, target.num_layers)
            trial.suggest_categorical("cache_dtype", ["fp32", "int8"])

        SPEC = SweepSpec(
            name="{name}", define_by_run=define, num_samples=4, epochs={epochs}, settings={settings!r},
            enqueued=lambda target: [{{"split": 1, "cache_dtype": "fp32"}}, {{"split": 2, "cache_dtype": "int8"}}],
            smoke=SmokeSize(num_samples={num_samples}, epochs={epochs}, max_train_examples={max_train_examples},
                            max_eval_examples={max_eval_examples}),
        )
    """)


def sweep_args(space: Path, storage: Path, model: Path, *extra: str) -> list[str]:
    return ["sweep", str(space), "--smoke", "--storage", str(storage), "--model", str(model), "--data", DATA, *extra]


def nested_runs(client: MlflowClient, parent) -> list:
    return client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")


def parent_run(client: MlflowClient, sweep: str):
    runs = client.search_runs([client.get_experiment_by_name("decoupled-sweep").experiment_id],
                              f"tags.`mlflow.runName` = 'sweep-{sweep}'")
    assert len(runs) == 1
    return runs[0]


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, path)}


def experiment_state_statuses(sweep_dir: Path) -> list[str]:
    """Trial statuses in the newest experiment state Tune has written (empty before the first)."""
    files = sorted(sweep_dir.glob("experiment_state-*.json"))
    if not files:
        return []
    try:
        state = json.loads(files[-1].read_text())
    except json.JSONDecodeError:  # caught mid-write
        return []
    return [json.loads(trial)["status"] for trial, _ in state["trial_data"]]


def trial_runs(client: MlflowClient, sweep: str) -> list:
    experiment = client.get_experiment_by_name("decoupled-sweep")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], f"tags.`decouple.sweep` = '{sweep}-smoke'")
    return [r for r in runs if "decouple.trial_id" in r.data.tags]


def test_killed_sweep_resumes_and_records_one_run_per_trial(local_ray, tiny_qa_checkpoint, tiny_qa_teacher, tmp_path,
                                                            capsys):
    """Through the real CLI: a 2-trial sweep, in a process of its own, is SIGKILLed once its first trial finished
    (and the second started); resumed with --resume (in this process), it ends with the parent run, one nested run
    per trial, metrics and artifacts."""
    storage = tmp_path / "storage"
    space = tiny_space(tmp_path, "resumable", num_samples=2)
    args = sweep_args(space, storage, tiny_qa_checkpoint, "--teacher", str(tiny_qa_teacher), "--max-concurrent", "1")
    command = [sys.executable, "-m", "orchestrator.cli", *args]
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    sweep_dir = storage / "resumable-smoke"
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while "TERMINATED" not in experiment_state_statuses(sweep_dir) or len(trial_runs(client, "resumable")) < 2:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the first trial did not finish in time"
            time.sleep(1)
        os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray processes it started, mid-sweep
        first.wait()
    assert experiment_state_statuses(sweep_dir).count("TERMINATED") == 1
    # The sweep's console: its trials' worker lines as its own, without Ray's "(RayTrainWorker pid=...)" or colours.
    console = (tmp_path / "first.log").read_text()
    assert "[train] epoch 1/1: " in console and not re.search(r"\(\w+ pid=\d+", console) and "\x1b[" not in console

    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    resumed = capsys.readouterr().out
    assert "mlflow ui --backend-store-uri sqlite:///" in resumed and "decouple report" in resumed
    assert experiment_state_statuses(sweep_dir) == ["TERMINATED"] * 2

    parent = parent_run(client, "resumable-smoke")
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_finished"] == 2
    curve = client.get_metric_history(parent.info.run_id, "curve_accuracy")  # the split curve, against the step
    assert sorted(m.step for m in curve) == [1, 2]
    assert parent.data.params["space"] == "resumable" and parent.data.tags["git_commit"]
    assert {"ray_version", "torch_version"} <= set(parent.data.tags)
    assert {"pareto_front.json", "pareto_front.png", "split_curve.png", "best_config.json", "trials.json",
            "search_space"} <= artifact_paths(client, parent.info.run_id)
    trials = nested_runs(client, parent)
    assert sorted(r.data.params["split"] for r in trials) == ["1", "2"]  # exactly one run per trial
    assert sorted(r.data.tags["decouple.trial_id"] for r in trials) == sorted(
        p.name.removeprefix("trial_") for p in sweep_dir.glob("trial_*"))
    for run in trials:
        params = run.data.params
        name = f"k{params['split']}-r1-{params['cache_dtype']}-{run.data.tags['decouple.trial_id']}"
        assert run.info.status == "FINISHED" and run.info.run_name == name  # says what the trial trains
        assert set(OBJECTIVES) <= set(run.data.metrics) and run.data.metrics["split"] == float(params["split"])
        assert run.data.tags["speed_reliable"] == ("true" if run.data.metrics["speed_reliable"] else "false")
        assert run.data.tags["mlflow.note.content"].startswith(f"split {params['split']}, ratio 1, ")
        assert run.data.metrics["speedup"] > 0 and run.data.metrics["speedup_bound"] >= 1
        assert client.get_metric_history(run.info.run_id, "eval_score")  # per-epoch metrics
        assert "checkpoint" in artifact_paths(client, run.info.run_id)
    # Logit KD: the first trial computed the teacher's logits, the second (same teacher and data) loaded them.
    assert sorted(r.data.metrics["teacher_logits_reused"] for r in trials) == [0.0, 1.0]
    int8 = next(r for r in trials if r.data.params["cache_dtype"] == "int8")
    fp32 = next(r for r in trials if r.data.params["cache_dtype"] == "fp32")
    assert int8.data.metrics["state_bytes_per_token"] < fp32.data.metrics["state_bytes_per_token"]

    assert main(["report", str(sweep_dir), "--max-drop", "100", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["rows"]) == 2
    assert credited_speedup(report["best"]) == max(credited_speedup(r) for r in report["rows"])


BAD_SPACES = {
    "split_too_deep": ("trial.suggest_int('split', 1, target.num_layers + 1)", "split=3 is larger than"),
    "ratio_not_dividing": ("trial.suggest_categorical('compression_ratio', [5]); return {'split': 1}",
                           "compression_ratio=5 does not divide the hidden size 32"),
    "unknown_parameter": ("trial.suggest_float('attention_dropout', 0.0, 0.3); return {'split': 1}",
                          "'attention_dropout' is not a training option"),
}


@pytest.mark.parametrize("name", BAD_SPACES)
def test_bad_space_fails_before_any_trial_in_one_line(name, tiny_qa_checkpoint, tmp_path, capsys):
    body, message = BAD_SPACES[name]
    space = write_space(tmp_path, name, f"""
        from search_spaces.base import SweepSpec

        def define(trial, target):
            {body}

        SPEC = SweepSpec(name="{name}", define_by_run=define, num_samples=2)
    """)
    storage = tmp_path / "storage"
    assert main(sweep_args(space, storage, tiny_qa_checkpoint)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"decouple sweep: error: {space}: ") and message in err
    assert not storage.exists()  # nothing trained, no Ray, no MLflow store


def test_concurrency_is_sized_from_the_cluster():
    assert concurrent_slots({"CPU": 2.0}, num_workers=1, use_gpu=False) == 2
    assert concurrent_slots({"CPU": 16.0}, num_workers=2, use_gpu=False) == 8
    assert concurrent_slots({"CPU": 16.0, "GPU": 1.0}, num_workers=1, use_gpu=True) == 1
    assert concurrent_slots({"CPU": 1.0}, num_workers=4, use_gpu=False) == 1  # one at a time, never none


def test_split_zero_trained_like_the_teacher_is_the_teacher(tiny_qa_checkpoint):
    from orchestrator.sweep.teacher import teacher_options
    from trainables.trial_reuse import teacher_key
    from search_spaces.base import trial_options
    from trainables.options import TrainOptions

    base = {"model": str(tiny_qa_checkpoint), "teacher": str(tiny_qa_checkpoint), "epochs": 1, "kd_ratio": 0.7}
    teacher = teacher_key(TrainOptions.from_dict(teacher_options(base)))
    assert teacher_key(trial_options({"split": 0}, base)) == teacher
    assert teacher_key(trial_options({"split": 0, "lr": 1e-3}, base)) != teacher  # another recipe: trained anew


@pytest.mark.parametrize("name", ["split", "compression", "distillation", "pareto"])
def test_searcher_of_each_shipped_space_suggests_legal_configs_and_takes_its_objectives(name, tiny_qa_checkpoint):
    import importlib

    from orchestrator.sweep.tuner import build_searcher, objective
    from search_spaces.base import Target, check_config

    spec = importlib.import_module(f"search_spaces.{name}").SPEC
    target = Target.from_checkpoint(tiny_qa_checkpoint, spec.epochs)
    searcher = build_searcher(spec, target, seed=0)
    metric, _ = objective(spec)
    assert metric == (list(spec.metrics) if name == "pareto" else "accuracy")
    base = {"model": str(tiny_qa_checkpoint), "teacher": str(tiny_qa_checkpoint), "epochs": spec.epochs}
    points = spec.points(target)
    for i in range(len(points) + 3):
        config = searcher.suggest(f"t{i}")
        if i < len(points):
            assert points[i].items() <= config.items()  # enqueued points come first, as given
        check_config(config, target, base)
        searcher.on_trial_complete(f"t{i}", {"accuracy": 50.0 + i, "speedup": 1.0 + i, "state_bytes_per_token": 64.0})
    assert len(searcher._ot_study.trials) == len(points) + 3
    assert all(t.state.name == "COMPLETE" for t in searcher._ot_study.trials)


def _pairs_tsv(path: Path, rows: int, seed: int, labels: tuple[str, ...] = ("0", "1")) -> Path:
    """A GLUE-style pair file: label 1 when the two sentences share their subject."""
    import random

    rng = random.Random(seed)
    names, verbs = ["anna", "boris", "chen", "dmitri", "eva", "farid"], ["sings", "runs", "reads", "cooks"]
    lines = ["sentence1\tsentence2\tlabel"]
    for _ in range(rows):
        a, b = rng.choice(names), rng.choice(names)
        lines.append(f"{a} {rng.choice(verbs)} today\t{b} {rng.choice(verbs)} often\t{labels[a == b]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sweep_scores_the_teacher_and_every_trial_on_eval_data(local_ray, tiny_qa_checkpoint, tmp_path, capsys):
    """--eval-data through the real CLI: the teacher and each trial are scored on that file (its 20 pairs, not a
    held-out part of --data), and the sweep writes results.json and its plots beside its Tune state."""
    storage = tmp_path / "storage"
    train, held_out = _pairs_tsv(tmp_path / "train.tsv", 64, 0), _pairs_tsv(tmp_path / "held_out.tsv", 20, 1)
    space = tiny_space(tmp_path, "pairs", num_samples=2)
    args = ["sweep", str(space), "--smoke", "--storage", str(storage), "--model", str(tiny_qa_checkpoint),
            "--task", "pair", "--data", str(train), "--eval-data", str(held_out), "--max-concurrent", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "results:    " in out
    results = json.loads((storage / "pairs-smoke" / "results.json").read_text())
    assert results["data"]["eval_data"]["sha256"] and results["data"]["eval_data"]["source"] == os.path.relpath(held_out)
    assert len(results["trials"]) == 2 and {t["split"] for t in results["trials"]} == {1, 2}
    assert (storage / "pairs-smoke" / "split_curve.png").stat().st_size > 0
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    runs = trial_runs(client, "pairs")
    assert len(runs) == 2 and all(r.data.metrics["eval_examples"] == 20 for r in runs)
    teacher = json.loads(next((storage / "teachers").glob("*/teacher.json")).read_text())
    assert teacher["metrics"]["eval_examples"] == 20
    parent = runs[0].data.tags["mlflow.parentRunId"]
    teacher_run = client.get_run(teacher["mlflow_run_id"])
    assert teacher_run.data.tags["mlflow.parentRunId"] == parent  # the teacher it trained sits with the sweep
    assert client.get_run(parent).data.tags["teacher_run_id"] == teacher["mlflow_run_id"]
    for row in results["trials"]:
        assert row["accuracy_drop"] == pytest.approx(teacher["accuracy"] - row["accuracy"], abs=1e-4)


def test_bad_eval_data_is_refused_in_one_line_before_any_trial(tiny_qa_checkpoint, tmp_path, capsys):
    train = _pairs_tsv(tmp_path / "train.tsv", 16, 0)
    other_labels = _pairs_tsv(tmp_path / "other.tsv", 8, 1, labels=("no", "yes"))
    space = tiny_space(tmp_path, "pairs", num_samples=1)
    storage = tmp_path / "storage"
    for eval_data, extra, message in (
            (tmp_path / "absent.tsv", (), "absent.tsv"),
            (other_labels, ("--labels", "0,1"), "'no' is not one of '0', '1'")):
        args = ["sweep", str(space), "--smoke", "--storage", str(storage), "--model", str(tiny_qa_checkpoint),
                "--task", "pair", "--data", str(train), "--eval-data", str(eval_data), *extra]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("decouple sweep: error: ") and "eval_data" in err, err
        assert message in err, err
    assert not storage.exists()  # no teacher, no Ray, no MLflow store


def test_a_taken_sweep_name_moves_on_and_resume_takes_the_newest(tmp_path):
    from orchestrator.sweep.options import SweepOptions
    from orchestrator.sweep.runner import choose_sweep
    from search_spaces.split import SPEC

    storage = str(tmp_path)
    assert choose_sweep(SweepOptions("split", smoke=True), SPEC, storage) == "split-smoke"
    (tmp_path / "split-smoke").mkdir()
    assert choose_sweep(SweepOptions("split", smoke=True), SPEC, storage) == "split-smoke-2"
    (tmp_path / "split-smoke-2").mkdir()
    assert choose_sweep(SweepOptions("split", smoke=True, resume=True), SPEC, storage) == "split-smoke-2"
    assert choose_sweep(SweepOptions("split", name="mine"), SPEC, storage) == "mine"
    (tmp_path / "mine").mkdir()
    with pytest.raises(Exception, match="already holds a sweep; add --resume"):
        choose_sweep(SweepOptions("split", name="mine"), SPEC, storage)
    with pytest.raises(Exception, match="no sweep 'other'"):
        choose_sweep(SweepOptions("split", name="other", resume=True), SPEC, storage)
