"""Any-split students: the per-step split schedule, the model cut at any trained split (saved, reloaded, cached ≡
live), the refusal of other splits, and one in-process training run at several splits."""
from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from tests.conftest import tiny_bert_config
from trainables.model.config import DecoupledConfig, format_splits, parse_splits
from trainables.model.decoupled import DecoupledModel, PassageStates
from trainables.options import TrainOptions
from trainables.training.split_schedule import step_splits

Q, P = 8, 12


def test_sandwich_schedule_against_hand_values():
    six = (1, 2, 3, 4, 5, 6)
    # Ends every step, the middle 2..5 in turn.
    assert [step_splits(six, 3, s) for s in range(5)] == [(1, 2, 6), (1, 3, 6), (1, 4, 6), (1, 5, 6), (1, 2, 6)]
    assert [step_splits(six, 4, s) for s in range(3)] == [(1, 2, 3, 6), (1, 4, 5, 6), (1, 2, 3, 6)]
    assert [step_splits(six, 1, s) for s in range(8)] == [(1,), (2,), (3,), (4,), (5,), (6,), (1,), (2,)]
    assert [step_splits(six, 2, s) for s in range(4)] == [(1, 2), (3, 4), (5, 6), (1, 2)]  # no room for a middle
    assert step_splits((2, 4), 3, 7) == (2, 4)  # more per step than the set holds: the whole set
    assert step_splits((3,), 3, 0) == (3,)  # a student of one split
    assert step_splits(six, 6, 0) == six


def test_split_sets_parse_and_print():
    assert parse_splits("1-6") == (1, 2, 3, 4, 5, 6)
    assert parse_splits("1,2,4") == (1, 2, 4)
    assert parse_splits("5, 1-3") == (1, 2, 3, 5)
    assert format_splits((1, 2, 3, 5, 7, 8)) == "1-3,5,7-8"
    for bad in ("", "a-3", "4-2", "1-", "1;2"):
        with pytest.raises(ValueError, match="splits=.*e.g. 1-6"):
            parse_splits(bad)


def test_options_fill_the_middle_split_and_refuse_what_cannot_work():
    common = dict(mode="student", teacher="t", task="pair")
    options = TrainOptions(splits="1-6", **common)
    assert (options.split, options.split_set) == (3, (1, 2, 3, 4, 5, 6))
    assert TrainOptions(splits="1-6", split=5, **common).split == 5
    with pytest.raises(ValueError, match=r"^split=4 is not one this model was trained at \(splits 1-3\); use one of"):
        TrainOptions(splits="1-3", split=4, **common)
    with pytest.raises(ValueError, match="^compression_ratio=2 with splits"):
        TrainOptions(splits="1-3", compression_ratio=2, **common)
    with pytest.raises(ValueError, match="^splits='0-3' includes 0"):
        TrainOptions(splits="0-3", **common)
    assert TrainOptions(splits="1-3", task="pair").split == 0  # a teacher ignores student options
    with pytest.raises(ValueError, match="^splits_per_step=0 must be >= 1"):
        TrainOptions(splits="1-3", splits_per_step=0, **common)


def _pair_model(splits: tuple[int, ...], split: int, **kw) -> DecoupledModel:
    torch.manual_seed(0)
    config = DecoupledConfig(split=split, splits=splits, task="pair", max_question_len=Q, **kw)
    return DecoupledModel(BertForSequenceClassification(tiny_bert_config(layers=3)), config).eval()


def _inputs():
    g = torch.Generator().manual_seed(1)
    q_ids, p_ids = torch.randint(1000, 2000, (3, Q), generator=g), torch.randint(1000, 2000, (3, P), generator=g)
    q_mask = torch.tensor([[1] * n + [0] * (Q - n) for n in (Q, 5, 3)])
    p_mask = torch.tensor([[1] * n + [0] * (P - n) for n in (P, 9, 4)])
    return q_ids, q_mask, p_ids, p_mask


def test_saved_any_split_model_reloads_at_each_split_as_cut_before_saving(tmp_path):
    model = _pair_model((1, 2, 3), 2, cross_embeddings=True)
    with torch.no_grad():
        model.cross_position.weight.normal_()  # trained cross embeddings must survive the reload at every split
    inputs = _inputs()
    before = {}
    with torch.no_grad():
        for split in (1, 3):
            with model.cut_at(split):
                before[split] = model(*inputs).logits
    assert model.config.split == 2  # the cut ends with the block
    assert not torch.allclose(before[1], before[3])
    model.save_pretrained(tmp_path / "any")
    for split in (1, 3):
        loaded = DecoupledModel.from_pretrained(tmp_path / "any", split=split).eval()
        assert loaded.config.splits == (1, 2, 3) and loaded.config.split == split
        q_ids, q_mask, p_ids, p_mask = inputs
        with torch.no_grad():
            live = loaded(*inputs).logits
            cached = PassageStates(loaded.encode_passage(p_ids, p_mask).values.clone())
            from_cache = loaded.forward_upper(loaded.encode_question(q_ids, q_mask), q_mask, cached, p_mask).logits
        assert torch.allclose(live, before[split], atol=1e-6), split
        assert torch.allclose(from_cache, live, atol=1e-6), split
    with pytest.raises(ValueError, match=r"^split=0 is not one this model was trained at \(splits 1-3\)"):
        DecoupledModel.from_pretrained(tmp_path / "any", split=0)


def test_any_split_model_refuses_compression():
    with pytest.raises(ValueError, match="^compression_ratio=2 with splits: one compressor"):
        DecoupledConfig(split=1, splits=(1, 2), compression_ratio=2)


def test_a_worker_trains_at_the_scheduled_splits_and_scores_each(tmp_path, monkeypatch, tokenizer):
    from pathlib import Path

    from orchestrator.train import loop_config
    from trainables.training.loop import Worker
    from trainables.training.loss_step import LossStep

    torch.manual_seed(0)
    tiny = tmp_path / "tiny"
    BertForSequenceClassification(tiny_bert_config(layers=3)).save_pretrained(tiny)
    tokenizer.save_pretrained(tiny)
    rows = ["index\tsentence1\tsentence2\tlabel"]
    rows += [f"{i}\tThe cat number {i} sleeps.\tA cat {'sleeps' if i % 2 else 'runs'}.\t{i % 2}" for i in range(40)]
    (tmp_path / "pairs.tsv").write_text("\n".join(rows) + "\n")
    teacher = tmp_path / "teacher"
    DecoupledModel.from_hf(tiny, DecoupledConfig(split=0, task="pair")).save_pretrained(teacher)
    options = TrainOptions(mode="student", model=str(tiny), teacher=str(teacher), task="pair", splits="1-3",
                           splits_per_step=2, epochs=1, data=str(tmp_path / "pairs.tsv"), eval_fraction=0.25,
                           max_question_len=16, max_passage_len=16, batch_size=8, lr=1e-3, progress=False)
    seen, task = [], LossStep.task

    def recording(self, *args, **kwargs):
        seen.append(self.split)
        return task(self, *args, **kwargs)

    monkeypatch.setattr(LossStep, "task", recording)
    reports, saved = [], []

    def report(metrics: dict, folder: str | None) -> None:
        reports.append(metrics)
        saved.append(DecoupledModel.from_pretrained(Path(folder)).config)

    Worker(loop_config(options), 0, 1, torch.device("cpu")).run(None, report)
    steps = int(reports[-1]["step"])  # 30 training rows, 8 a step: 4 steps
    assert steps == 4
    assert seen == [k for step in range(steps) for k in step_splits((1, 2, 3), 2, step)] == [1, 2, 1, 3, 2, 3, 1, 2]
    assert (saved[-1].splits, saved[-1].split) == ((1, 2, 3), 2)
    for split in (1, 2, 3):
        assert 0 <= reports[-1][f"eval_score_k{split}"] <= 100
    assert reports[-1]["eval_score_k2"] == reports[-1]["eval_score"]  # the model's own split, scored twice alike


def test_refine_candidates_by_hand():
    from orchestrator.sweep.pareto import Budget, refine_candidates

    def row(split, drop, speedup, training="any-split"):
        return {"trial": f"t{split}{training}", "split": split, "accuracy": 80 - drop, "accuracy_drop": drop,
                "speedup": speedup, "speedup_bound": speedup, "speed_reliable": 1.0, "state_bytes_per_token": 1536.0,
                "training": training}

    rows = [row(0, 0.0, 1.0, "teacher"), row(1, 0.5, 1.1), row(2, 3.0, 1.3), row(3, 6.0, 1.6), row(4, 9.0, 2.0)]
    budget = Budget(max_drop=1.0)
    # k = 1 is recommended (within 1 point); the faster splits outside the budget, nearest to it first.
    assert refine_candidates(rows, budget, 2) == [2, 3]
    assert refine_candidates(rows, budget, 9) == [2, 3, 4]
    assert refine_candidates(rows, Budget(max_drop=10.0), 2) == []  # k = 4 is recommended: nothing faster to win
    assert refine_candidates([*rows[:1], *rows[2:]], budget, 1) == [2]  # none recommended: every split is a candidate
    assert refine_candidates([row(2, 3.0, 1.3, "own")], budget, 1) == []  # a dedicated student is refined already


def test_the_split_sweep_trains_once_and_scores_a_trial_per_split(tiny_qa_checkpoint, tmp_path, monkeypatch, capsys):
    """Through the real CLI: one any-split student for splits 1-2 of the tiny model, a trial per split 0..2 that
    only scores and times it, and --refine training one dedicated student beside them in the report."""
    import json
    import textwrap
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    from orchestrator.cli import main

    space = tmp_path / "once.py"
    space.write_text(textwrap.dedent("""
        from search_spaces.base import SmokeSize, SweepSpec
        from search_spaces.split import define, every_split

        SPEC = SweepSpec(name="once", define_by_run=define, epochs=1, enqueued=every_split, any_split=True,
                         settings={"max_question_len": 24, "max_passage_len": 64, "doc_stride": 32,
                                   "batch_size": 16, "lr": 1e-3, "splits_per_step": 2},
                         smoke=SmokeSize(num_samples=None, epochs=1, max_train_examples=48, max_eval_examples=24))
    """))
    monkeypatch.setattr("orchestrator.sweep.runner.refine_candidates", lambda rows, budget, n: [1][:n])
    storage = tmp_path / "storage"
    args = ["sweep", str(space), "--smoke", "--storage", str(storage), "--model", str(tiny_qa_checkpoint),
            "--data", "synthetic:articles=10", "--max-concurrent", "1", "--refine", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("training one any-split student") == 1 and "dedicated students at split 1" in out
    (student,) = [json.loads(p.read_text()) for p in (storage / "students").glob("*/student.json")]
    assert student["splits"] == [1, 2]
    results = json.loads((storage / "once-smoke" / "results.json").read_text())
    by_kind = sorted((t["split"], t["training"]) for t in results["trials"])
    assert by_kind == [(0, "teacher"), (1, "any-split"), (1, "own"), (2, "any-split")]
    for trial in results["trials"]:
        if trial["training"] == "any-split":  # scored on the student: its own run's score at that split
            assert trial["accuracy"] == pytest.approx(student["metrics"][f"eval_score_k{trial['split']}"], abs=1e-3)
            assert trial["trial_train_s"] == 0
            assert Path(trial["checkpoint"]).resolve() == Path(student["path"]).resolve()
    # Ray Train ran three times: the teacher, the any-split student and the one dedicated student.
    assert len(list((storage / "train").glob("once-smoke-*"))) == 1
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("decoupled-sweep").experiment_id
    trials = client.search_runs([experiment], "tags.`decouple.sweep` = 'once-smoke'")
    assert len([r for r in trials if "decouple.trial_id" in r.data.tags]) == 4  # one nested run per trial
    assert sum("any_split_student" in r.data.tags for r in trials) == 2
    assert main(["report", str(storage / "once-smoke")]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if " fp32 " in line]
    assert sorted(word for row in rows for word in row if word in ("any-split", "own", "teacher")) == [
        "any-split", "any-split", "own", "teacher"]


@pytest.mark.parametrize("command", [
    ["eval", "--data", "synthetic:articles=2", "--split", "2"],
    ["cache", "build", "--data", "synthetic:articles=2", "--split", "2", "--out", "{tmp}/cache"],
    ["bench", "--splits", "0,1,2", "--repeats", "1", "--warmup", "0"],
])
def test_commands_refuse_a_split_the_model_was_not_trained_at_in_one_line(command, tiny_qa_checkpoint, tmp_path,
                                                                           capsys):
    from orchestrator.cli import main

    model = tmp_path / "any"
    student = DecoupledModel.from_hf(tiny_qa_checkpoint, DecoupledConfig(split=1, splits=(1,), max_question_len=16))
    student.save_pretrained(model)
    capsys.readouterr()
    args = [arg.format(tmp=tmp_path) for arg in command]
    assert main([*args, "--model", str(model)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[eval] using")]
    named = f"model={str(model)!r}: " if command[0] == "bench" else ""
    assert err == [f"decouple {command[0]}: error: {named}split=2 is not one this model was trained at (splits 1); "
                   "use one of 1"]
    assert not (tmp_path / "cache").exists()  # refused before anything was written


def test_split_zero_of_an_any_split_sweep_is_its_teacher_even_a_given_one():
    """A given teacher (--teacher) has no key to match, so a split-0 trial trained a new full model; in a sweep with
    an any-split student the curve's left end is the teacher its students distil from."""
    from trainables.trial_reuse import reuses_teacher

    given = {"path": "runs/teacher", "key": "given"}
    teacher_trial = TrainOptions(task="pair")
    assert not reuses_teacher(teacher_trial, given)  # a sweep of dedicated students trains split 0 with its budget
    assert reuses_teacher(teacher_trial, given, student={"key": "k", "splits": [1, 2]})
    assert not reuses_teacher(TrainOptions(mode="student", teacher="t", split=1), given, student={"key": "k"})


def test_relative_data_paths_reach_the_trials_absolute(tmp_path, monkeypatch):
    """Trials run in their own working directories: a relative --data reached them as given and was not found."""
    import os

    from orchestrator.sweep.runner import local_absolute

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.tsv").write_text("x\n")
    assert local_absolute("data/train.tsv") == os.path.join(str(tmp_path), "data", "train.tsv")
    for kept in ("synthetic:articles=4", "glue/mrpc", "s3://bucket/train.tsv", None):
        assert local_absolute(kept) == kept
