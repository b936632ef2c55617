"""A sweep on a real multi-node Ray cluster on this machine, run as docs/clusters.md runs one on cluster.yaml's, in
one test (one cluster, one sweep, every cluster guarantee):

- the cluster: a head and three 1-CPU worker nodes, each started by `ray start` with a temporary directory of its own
  (as on separate machines; nodes sharing one would unpack the job's working directory over each other's, under
  the running driver), a real `mlflow server` on 127.0.0.1 over http, and the sweep's storage in a bucket (a real
  S3 API on localhost, moto's server). Like cluster.yaml's, the head advertises 0 CPUs: trial drivers and their
  Ray Train controllers stay on the head, training workers and speed measurements go to the worker nodes;
- the sweep is submitted with `ray job submit --working-dir .`, running `orchestrator/cluster_entry.py` as a file on
  the head (what `ray submit` runs), which takes the tracking URI and the storage from the cluster's environment;
- teacher, trial checkpoints, Tune state and records all live in the bucket, and nothing is written in the job's
  working directory; workers load the teacher from their node's copy; `decouple report` reads the sweep from there;
- the worker nodes that run its training workers are lost mid-trial (SIGKILL to each of their processes, no drain)
  and replaced; Ray Train restarts each trial from its last registered epoch checkpoint, and MLflow ends with exactly
  one run per trial and one value per epoch of every metric;
- a local directory every node sees passes the check a sweep makes of a local --storage on several nodes.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.test_sweep import REPO, tiny_space

DATA = "synthetic:articles=60"
EPOCH_STEPS_DATA = {"max_train_examples": 1200, "max_eval_examples": 48}
"""~1,000 steps of batch 4 per epoch: an epoch lasts long enough (>= 10 s here) to lose a node in the middle of it."""
RAY = str(Path(sys.executable).parent / "ray")
OBJECT_STORE_BYTES = 150 * 1024 * 1024
NO_TOKEN = {"RAY_AUTH_MODE": "disabled"}
"""The cluster's nodes and its clients (`ray job submit`, a driver) without Ray's token authentication, which `ray
start --head` turns on by default and which nothing here is about."""


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


class Cluster:
    """Ray nodes on this machine, each `ray start --block` in a process group of its own (losing a node kills the
    group) with its own temporary directory under ``root`` (short: Ray's socket paths must fit 107 characters).
    Nothing here touches a Ray of this process or any other Ray on the machine (never `ray stop`)."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.nodes: dict[str, subprocess.Popen] = {}

    @property
    def dashboard(self) -> str:
        """The head's dashboard: Ray's job and state APIs."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start_head(self) -> None:
        self._start("head", "--head", "--port", str(self.gcs_port), "--num-cpus", "0", "--include-dashboard", "true",
                    "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard_port),
                    "--ray-client-server-port", str(free_port()))

    def add_worker(self) -> str:
        name = f"worker-{len(self.nodes)}"
        self._start(name, "--address", f"127.0.0.1:{self.gcs_port}", "--num-cpus", "1")
        return name

    def _start(self, name: str, *args: str) -> None:
        # Ports of their own: another Ray on the machine holds Ray's default ones.
        command = [RAY, "start", "--block", "--disable-usage-stats", "--node-name", name, "--temp-dir",
                   str(self.root / name), "--object-store-memory", str(OBJECT_STORE_BYTES),
                   "--dashboard-agent-listen-port", str(free_port()), "--min-worker-port", "0", "--max-worker-port",
                   "0", *args]
        with (self.root / f"{name}.log").open("w") as log:
            self.nodes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                start_new_session=True)

    def wait_for(self, names: list[str], timeout: float = 300) -> None:
        """Until every node in ``names`` is alive in the cluster (the head's dashboard answering first)."""
        from ray.util.state import list_nodes

        deadline, seen = time.monotonic() + timeout, None
        while True:
            try:
                seen = {n.node_name: n.state for n in list_nodes(address=self.dashboard)}
                if all(seen.get(name) == "ALIVE" for name in names):
                    return
            except Exception as err:  # the dashboard is not up yet
                seen = err
            for name in names:
                assert self.nodes[name].poll() is None, (self.root / f"{name}.log").read_text()[-3000:]
            logs = "".join((self.root / f"{name}.log").read_text()[-1000:] for name in names)
            assert time.monotonic() < deadline, f"nodes {names} not up in time; the cluster's: {seen}\n{logs}"
            time.sleep(1)

    def training_nodes(self) -> list[str]:
        """The worker nodes that run a live Ray Train worker now."""
        from ray.util.state import list_actors, list_nodes

        actors = list_actors(address=self.dashboard, filters=[("class_name", "=", "RayTrainWorker"),
                                                              ("state", "=", "ALIVE")])
        busy = {actor.node_id for actor in actors}
        nodes = list_nodes(address=self.dashboard, filters=[("state", "=", "ALIVE")])
        return sorted(n.node_name for n in nodes if n.node_id in busy)

    def kill(self, name: str) -> None:
        """Lose node ``name``: SIGKILL to its every process (its raylet, object store, agents and workers)."""
        os.killpg(self.nodes[name].pid, signal.SIGKILL)
        self.nodes[name].wait()

    def shutdown(self) -> None:
        """Lose every node (Ray's graceful stop of a `ray start --block` node takes up to a minute; these nodes and
        their folders are thrown away)."""
        for name in self.nodes:
            with contextlib.suppress(ProcessLookupError):
                self.kill(name)


@pytest.fixture
def cluster(s3_bucket):
    """cluster.yaml's shape: a head with 0 CPUs and three 1-CPU worker nodes (started after the bucket, so its
    credentials are in their environment)."""
    root = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    cluster = Cluster(root, {**os.environ, **NO_TOKEN})
    try:
        cluster.start_head()
        cluster.wait_for(["head"])
        workers = [cluster.add_worker() for _ in range(3)]
        cluster.wait_for(workers)
        yield cluster
    finally:
        cluster.shutdown()
        shutil.rmtree(root, ignore_errors=True)


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


def subfolders(location: str) -> set[str]:
    """Names of the folders directly inside ``location`` (a bucket URI)."""
    import pyarrow.fs as pafs

    from trainables import storage

    filesystem, path = storage.filesystem(location)
    return {Path(info.path).name for info in filesystem.get_file_info(pafs.FileSelector(path))
            if info.type == pafs.FileType.Directory}


def submit(cluster: Cluster, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``ray job submit --working-dir REPO -- COMMAND`` with ``env`` in the job's environment, its output (the job's
    log, followed) in ``log``."""
    runtime_env = json.dumps({"env_vars": env})
    submit_command = [RAY, "job", "submit", "--address", cluster.dashboard, "--working-dir", str(REPO),
                      "--runtime-env-json", runtime_env, "--", *command]
    with log.open("w") as out:
        return subprocess.Popen(submit_command, cwd=REPO, env={**os.environ, **NO_TOKEN}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def test_a_submitted_sweep_keeps_its_runs_in_a_bucket_and_survives_losing_worker_nodes(
        cluster, mlflow_server, s3_bucket, tiny_qa_checkpoint, tmp_path, capsys):
    from orchestrator.cli import main
    from trainables import storage

    bucket, query = s3_bucket
    root = f"{bucket}/{tmp_path.name}?{query}"
    cache = tmp_path / "cache"  # the nodes' copies of bucket models (one machine: one folder)
    space = tiny_space(tmp_path, "multinode", num_samples=2, epochs=2, batch_size=4, **EPOCH_STEPS_DATA)
    # The cluster's settings, as cluster.yaml puts them in the head's environment; DECOUPLE_DEBUG: a traceback if it
    # fails. The head of a real cluster runs one Ray; here Ray Train's placement-group cleaner, asking the state API
    # without an address, would find several and fail ("Found multiple active Ray instances"): name the head's.
    env = {"DECOUPLE_STORAGE": root, "DECOUPLE_TRACKING_URI": mlflow_server, storage.CACHE_ENV: str(cache),
           "DECOUPLE_DEBUG": "1", "RAY_API_SERVER_ADDRESS": cluster.dashboard}
    command = [sys.executable, "orchestrator/cluster_entry.py", "sweep", str(space), "--smoke", "--model",
               str(tiny_qa_checkpoint), "--data", DATA, "--max-failures", "2", "--max-concurrent", "2"]
    log = tmp_path / "submit.log"
    client = MlflowClient(mlflow_server)
    job = submit(cluster, command, env, log)
    try:
        # Wait until Ray Train has registered a trial's epoch-1 checkpoint (its controller then logs epoch 1 to
        # MLflow) and the trial is training epoch 2. A head under load may take a while to register its job agent;
        # Ray then refuses the submission before creating any job and says to try again later.
        deadline = time.monotonic() + 600
        while not (trial := trial_past_epoch_one(client)):
            if job.poll() is not None and "No available agent to submit job" in log.read_text():
                time.sleep(2)
                job = submit(cluster, command, env, log)
            assert job.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, "no trial finished its first epoch in time"
            time.sleep(0.5)
        lost = cluster.training_nodes()
        trial_id = trial.data.tags["decouple.trial_id"]
        epoch_two = [f for f in storage.find_files(storage.join(root, "train"), "trainer_state.json")
                     if f"-{trial_id}/" in f and "/epoch_002/" in f]
        assert lost and not epoch_two, "epoch 2 ended first"
        killed_at, killed_ms = time.monotonic(), time.time() * 1000
        for name in lost:
            cluster.kill(name)
        cluster.wait_for([cluster.add_worker() for _ in lost], timeout=600)  # as the autoscaler replaces a lost node
        assert job.wait(timeout=600) == 0, log.read_text()[-4000:]
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    output = log.read_text()
    print(f"lost {len(lost)} node(s) {time.monotonic() - killed_at:.0f} s before the sweep ended")
    assert "succeeded" in output and "[cluster] decouple sweep " in output
    sweep_dir = storage.join(root, "multinode-smoke")
    assert f"decouple report {sweep_dir}" in output

    # Everything lives in the bucket; the job's working directory (its copy of the repository, on the head) holds
    # no runs/ and no MLflow store.
    head_session = (cluster.root / "head" / "session_latest").resolve()
    (working_dir,) = [path for path in (head_session / "runtime_resources" / "working_dir_files").iterdir()
                      if path.is_dir()]
    assert (working_dir / "orchestrator" / "cluster_entry.py").is_file()
    assert not (working_dir / "runs").exists() and not list(working_dir.glob("*.db"))
    (teacher,) = [json.loads(storage.read_text(t)) for t in storage.find_files(storage.join(root, "teachers"),
                                                                              "teacher.json")]
    assert teacher["path"].startswith(bucket + "/")
    copies = [(folder / storage.COMPLETE).read_text() for folder in cache.iterdir() if not folder.name.startswith(".")]
    assert teacher["path"] in copies  # the workers read the teacher from their node's copy
    capsys.readouterr()
    assert main(["report", sweep_dir, "--max-drop", "100", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["rows"]) == 2

    runs = sweep_runs(client, "multinode-smoke")
    parent = [r for r in runs if "decouple.trial_id" not in r.data.tags]
    trials = [r for r in runs if "decouple.trial_id" in r.data.tags]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    trial_ids = {r.data.tags["decouple.trial_id"] for r in trials}
    assert len(trials) == 2 and len(trial_ids) == 2  # one run per trial
    assert {name.removeprefix("trial_") for name in subfolders(sweep_dir) if name.startswith("trial_")} == trial_ids
    checkpoints = storage.find_files(storage.join(root, "train"), "trainer_state.json")
    assert {t for t in trial_ids if any(f"-{t}/" in f and "/epoch_002/" in f for f in checkpoints)} == trial_ids
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

    # A sweep whose --storage is a local directory checks first that every node sees it (`check_shared`: a task on
    # each live node reads a marker written here); one that every node of this cluster sees passes.
    shared = tmp_path / "shared"
    check = ("import sys, ray; from orchestrator.shared_storage import check_shared; ray.init(address=sys.argv[1]); "
             "check_shared(sys.argv[2])")
    done = subprocess.run([sys.executable, "-c", check, f"127.0.0.1:{cluster.gcs_port}", str(shared)], cwd=REPO,
                          env={**os.environ, **NO_TOKEN}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
