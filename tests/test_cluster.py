"""Sweeps on real multi-node Ray clusters on this machine (`ray.cluster_utils.Cluster`: a head and worker nodes, each
its own raylet on loopback) with a real `mlflow server` on 127.0.0.1 over http, as cluster.yaml sets them up:

- a 2-trial sweep across the nodes loses the worker nodes that run its training workers mid-trial (SIGKILL, no
  drain); Ray Train restarts each trial from its last registered epoch checkpoint on a replacement node, and MLflow
  ends with exactly one run per trial and one value per epoch of every metric;
- the smoke sweep submitted with `ray job submit --working-dir .` to a local head succeeds.

Like cluster.yaml's, the multi-node head advertises 0 CPUs: trial drivers and their Ray Train controllers stay on the
head, training workers and speed measurements go to the worker nodes.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.test_sweep import REPO, tiny_space

DATA = "synthetic:articles=60"
EPOCH_STEPS_DATA = {"max_train_examples": 1200, "max_eval_examples": 48}
"""~1,000 steps of batch 4 per epoch: an epoch lasts long enough (>= 10 s here) to lose a node in the middle of it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on 127.0.0.1 (sqlite backend, proxied artifact store), as cluster.yaml starts it on the head."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art")]
    with (root / "server.log").open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, (root / "server.log").read_text()[-2000:]
            time.sleep(0.5)
    yield uri
    server.terminate()
    server.wait(timeout=30)


def start_cluster(head_cpus: int, workers: int):
    """A head with its dashboard (the state API, and Ray's job server) and ``workers`` 1-CPU worker nodes."""
    from ray.cluster_utils import Cluster

    head = {"num_cpus": head_cpus, "include_dashboard": True, "dashboard_port": free_port()}
    cluster = Cluster(initialize_head=True, connect=False, head_node_args=head)
    for _ in range(workers):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture
def cluster():
    """cluster.yaml's shape: a head with 0 CPUs and three 1-CPU worker nodes."""
    cluster = start_cluster(head_cpus=0, workers=3)
    yield cluster
    cluster.shutdown()


@pytest.fixture
def head_only(monkeypatch):
    """A lone 2-CPU head for `ray job submit`. (Nodes on one machine share one session directory, so a job's
    working_dir unpacked there would be deleted under the driver when a worker node drops its own reference.)"""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # `decouple` in jobs
    cluster = start_cluster(head_cpus=2, workers=0)
    yield cluster
    cluster.shutdown()


def sweep_command(space: Path, storage: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli", "sweep", str(space), "--smoke", "--storage", str(storage),
            "--model", str(model), *extra]


def training_nodes(cluster) -> list:
    """The cluster's nodes that run a live Ray Train worker now."""
    import ray
    from ray.util.state import list_actors

    ray.init(address=cluster.address, log_to_driver=False)
    try:
        alive = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    finally:
        ray.shutdown()
    busy = {actor.node_id for actor in alive}
    return [node for node in cluster.worker_nodes if node.node_id in busy]


def sweep_runs(client: MlflowClient, sweep: str) -> list:
    experiment = client.get_experiment_by_name("decoupled-sweep")
    return [] if experiment is None else client.search_runs(
        [experiment.experiment_id], f"tags.`decouple.sweep` = '{sweep}'")


def trial_past_epoch_one(client: MlflowClient):
    """A trial run of the multinode sweep with its epoch-1 metrics logged, if any."""
    for run in sweep_runs(client, "multinode-smoke"):
        if "decouple.trial_id" in run.data.tags and history(client, run.info.run_id, "eval_score"):
            return run
    return None


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_sweep_survives_losing_worker_nodes_mid_trial(cluster, mlflow_server, tiny_qa_checkpoint, tmp_path):
    shared = tmp_path / "shared"  # every node of this cluster sees it: the shared storage Ray 2.60 needs
    space = tiny_space(tmp_path, "multinode", num_samples=2, epochs=2, batch_size=4, **EPOCH_STEPS_DATA)
    # Through the `ray submit` entry script, run as a file on the "head", the cluster's settings in its environment.
    command = [sys.executable, str(REPO / "orchestrator" / "cluster_entry.py"), "sweep", str(space), "--smoke",
               "--model", str(tiny_qa_checkpoint), "--data", DATA, "--max-failures", "2", "--max-concurrent", "2"]
    env = {**os.environ, "RAY_ADDRESS": cluster.address, "DECOUPLE_STORAGE": str(shared),
           "DECOUPLE_TRACKING_URI": mlflow_server}
    log_path = tmp_path / "sweep.log"
    client = MlflowClient(mlflow_server)
    with log_path.open("w") as log:
        sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            # Wait until Ray Train has registered a trial's epoch-1 checkpoint (its controller then logs epoch 1 to
            # MLflow) and the trial is training epoch 2.
            deadline = time.monotonic() + 400
            while not (trial := trial_past_epoch_one(client)):
                assert sweep.poll() is None, log_path.read_text()[-4000:]
                assert time.monotonic() < deadline, "no trial finished its first epoch in time"
                time.sleep(0.5)
            lost = training_nodes(cluster)
            trial_dir = f"train/*-{trial.data.tags['decouple.trial_id']}"
            assert lost and not list(shared.glob(f"{trial_dir}/*/epoch_002")), "epoch 2 ended first"
            killed_at, killed_ms = time.monotonic(), time.time() * 1000
            for node in lost:
                cluster.remove_node(node, allow_graceful=False)  # SIGKILL: its raylet, workers and object store
            for _ in lost:
                cluster.add_node(num_cpus=1)  # what the autoscaler does for a lost node
            assert sweep.wait(timeout=600) == 0, log_path.read_text()[-4000:]
        finally:
            if sweep.poll() is None:
                sweep.kill()
    print(f"lost {len(lost)} node(s) {time.monotonic() - killed_at:.0f} s before the sweep ended")

    runs = sweep_runs(client, "multinode-smoke")
    parent = [r for r in runs if "decouple.trial_id" not in r.data.tags]
    trials = [r for r in runs if "decouple.trial_id" in r.data.tags]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    assert len(trials) == 2 and len({r.data.tags["decouple.trial_id"] for r in trials}) == 2  # one run per trial
    assert {p.name.removeprefix("trial_") for p in (shared / "multinode-smoke").glob("trial_*")} == {
        r.data.tags["decouple.trial_id"] for r in trials}
    for run in trials:
        assert run.info.status == "FINISHED"
        for key in ("eval_score", "train_loss", "step"):
            assert [step for step, _ in history(client, run.info.run_id, key)] == [1, 2], key  # none lost or doubled
        assert run.data.metrics["speedup"] > 0 and "checkpoint" in {a.path for a in client.list_artifacts(
            run.info.run_id)}
    # The trial that was in epoch 2 restarted from its epoch-1 checkpoint: its second attempt began at that step.
    resumed = next(r for r in trials if r.info.run_id == trial.info.run_id)
    epoch1_step = dict(history(client, resumed.info.run_id, "step"))[1]
    starts = history(client, resumed.info.run_id, "start_step")
    assert starts == [(1, 0.0), (2, epoch1_step)], starts
    # Steps the lost attempt had trained past its checkpoint (its rate times the time from epoch 1 to the loss).
    rate = client.get_metric_history(resumed.info.run_id, "train_steps_per_s")[0]
    repeated = rate.value * (killed_ms - rate.timestamp) / 1000
    print(f"resumed at step {epoch1_step:.0f} of {dict(history(client, resumed.info.run_id, 'step'))[2]:.0f}; "
          f"~{repeated:.0f} steps repeated ({rate.value:.0f} steps/s)")


def test_ray_job_submit_runs_the_smoke_sweep(head_only, tiny_qa_checkpoint, tmp_path):
    storage = tmp_path / "storage"
    space = tiny_space(tmp_path, "submitted", num_samples=2)
    dashboard = f"http://{head_only.head_node.webui_url}"  # the dashboard serves Ray's job API
    ray_cli = Path(sys.executable).parent / "ray"
    command = [str(ray_cli), "job", "submit", "--address", dashboard, "--working-dir", str(REPO),
               "--runtime-env-json", '{"env_vars": {"DECOUPLE_DEBUG": "1"}}', "--",  # a traceback if it fails
               "decouple", "sweep", str(space), "--smoke", "--storage", str(storage), "--model",
               str(tiny_qa_checkpoint), "--data", "synthetic:articles=10"]
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
        # A head under load may take a while to register its job agent; Ray then refuses the submission before
        # creating any job and says to try again later (seen with the machine's load at 20).
        if "No available agent to submit job" not in done.stdout + done.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "succeeded" in done.stdout and "decouple report" in done.stdout
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("decoupled-sweep").experiment_id],
                              "tags.`decouple.sweep` = 'submitted-smoke'")
    assert len([r for r in runs if "decouple.trial_id" in r.data.tags]) == 2


def test_sweep_keeps_its_runs_in_a_bucket(mlflow_server, s3_bucket, tiny_qa_checkpoint, tmp_path, monkeypatch, capsys):
    """--storage s3://...: teacher, trial checkpoints, Tune state and records all live in the bucket (a real S3 API
    on localhost); workers load the teacher from their node's copy; `decouple report` reads the sweep from there."""
    from orchestrator.cli import main
    from trainables import storage

    bucket, query = s3_bucket
    root = f"{bucket}/{tmp_path.name}?{query}"
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    space = tiny_space(tmp_path, "bucketed", num_samples=2)
    command = sweep_command(space, root, tiny_qa_checkpoint, "--data", "synthetic:articles=10",
                            "--tracking-uri", mlflow_server)
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (tmp_path / "runs").exists() and not list(tmp_path.glob("*.db"))  # nothing written locally

    teachers = storage.find_files(storage.join(root, "teachers"), "teacher.json")
    assert len(teachers) == 1 and json.loads(storage.read_text(teachers[0]))["path"].startswith(bucket + "/")
    assert len(storage.find_files(storage.join(root, "train"), "trainer_state.json")) == 2  # one checkpoint a trial
    sweep_dir = storage.join(root, "bucketed-smoke")
    assert f"decouple report {sweep_dir}" in done.stdout
    assert main(["report", sweep_dir, "--max-drop", "100", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["rows"]) == 2

    client = MlflowClient(mlflow_server)
    trials = [r for r in sweep_runs(client, "bucketed-smoke") if "decouple.trial_id" in r.data.tags]
    assert len(trials) == 2
    for run in trials:
        assert "checkpoint" in {a.path for a in client.list_artifacts(run.info.run_id)}
