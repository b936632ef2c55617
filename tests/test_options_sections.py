"""Every setting keeps one name from the flag to the worker (issue 35, item 3): the options are grouped into the
sections the worker uses, and `loop_config` builds each of the worker's specs from its section by the options'
names. Before, it re-nested 46 flat options by hand and renamed some on the way (`kd_ratio` became
`DistillSpec.ratio`, `compression_phase1_epochs` became `phase1_epochs`)."""
from __future__ import annotations

from dataclasses import fields

import pytest

from orchestrator.train import loop_config
from trainables.data.label_sets import parse_labels
from trainables.model.config import DecoupledConfig, parse_splits
from trainables.options import DATA, DISTILL, MODEL, OPTIM, RUN, SECTIONS, TrainOptions
from trainables.training.config import DataSpec, DistillSpec, LoopConfig, OptimSpec

SPEC_OF = {DATA: "data", MODEL: "decoupled", DISTILL: "distill", OPTIM: "optim"}
"""The `LoopConfig` field holding each worker section's spec."""
RUN_TO_LOOP = {"mode": "mode", "resume_from": "resume_from", "progress": "progress", "model": "init_path",
               "teacher": "teacher_path", "student_init": "init_path", "teacher_logits_cache": "teacher_logits_file"}
"""Options of the run section the worker gets: under their names, or resolved into a location it loads."""
DRIVER_ONLY = {"num_workers", "cpus_per_worker", "use_gpu", "max_failures", "output_dir"}
"""Options of the run section the driver alone reads (Ray's scaling and failure settings, where the run goes)."""
SHARED = {("decoupled", "task"): "task", ("decoupled", "max_question_len"): "max_question_len",
          ("data", "seed"): "seed"}
"""Spec fields that repeat an option of another section, under that option's name."""
DERIVED = {("decoupled", "num_labels")}
"""Spec fields no option sets: taken from the data by the worker."""


def changed_options(tmp_path, teacher, **overrides) -> TrainOptions:
    """A student whose every worker-section option differs from its default, so a setting dropped or crossed on the
    way to the worker shows."""
    (tmp_path / "train.tsv").write_text("s1\ts2\tlabel\n")
    (tmp_path / "held.tsv").write_text("s1\ts2\tlabel\n")
    values = dict(
        mode="student", teacher=str(teacher), student_init="pretrained", model=str(teacher),
        data=str(tmp_path / "train.tsv"), eval_data=str(tmp_path / "held.tsv"), task="pair", labels="no,yes",
        eval_fraction=0.3, eval_articles=3, doc_stride=8, max_question_len=20, max_passage_len=30,
        max_train_examples=11, max_eval_examples=13,
        split=2, splits="1-3", cache_dtype="int8", cross_embeddings=True, passage_positions="restart",
        pair_head="segments",
        kd_temperature=3.0, kd_ratio=0.25, hidden_weight=0.1, attention_weight=0.2, lrs_weight=0.3,
        split_anneal=0.4, splits_per_step=3,
        lr=2e-4, weight_decay=0.02, warmup_ratio=0.05, max_grad_norm=0.5, dropout=0.15, mask_augment=0.1, epochs=3,
        batch_size=7, eval_batch_size=9, seed=5, use_gpu=True, precision="bf16",
        resume_from=str(teacher), progress=False, teacher_logits_cache=str(tmp_path / "logits"),
    )
    return TrainOptions(**{**values, **overrides})


def expected(name: str, value):
    """An option's value as the worker's spec holds it: paths absolute, labels and splits parsed."""
    if name == "labels":
        return parse_labels(value)
    if name == "splits":
        return parse_splits(value) if value is not None else ()
    return value


def test_every_option_belongs_to_one_section():
    sections = {f.name: f.metadata["section"] for f in fields(TrainOptions)}
    assert set(sections.values()) == set(SECTIONS)
    assert {name for name, section in sections.items() if section == RUN} == set(RUN_TO_LOOP) | DRIVER_ONLY


@pytest.mark.parametrize("overrides,defaults", [
    ({}, {"compression_ratio", "compression_phase1_epochs"}),  # an any-split student cannot compress
    ({"splits": None, "compression_ratio": 2, "compression_phase1_epochs": 1, "task": "qa", "labels": None,
      "pair_head": "cls", "eval_fraction": 0.2}, {"splits", "task", "labels", "pair_head", "eval_fraction"}),
], ids=["any-split", "compressed"])
def test_every_option_reaches_the_worker_under_its_own_name(tmp_path, tiny_qa_checkpoint, overrides, defaults):
    options = changed_options(tmp_path, tiny_qa_checkpoint, **overrides)
    loop = loop_config(options)
    reached = set()
    for f in fields(TrainOptions):
        section, value = f.metadata["section"], getattr(options, f.name)
        if section == RUN:
            continue
        spec = getattr(loop, SPEC_OF[section])
        assert getattr(spec, f.name) == expected(f.name, value), f"{f.name} reached {SPEC_OF[section]} changed"
        reached.add((SPEC_OF[section], f.name))
        if f.name not in defaults:
            assert value != f.default, f"{f.name}: the test leaves it at its default, so a dropped copy would pass"
    for (spec, name), option in SHARED.items():
        assert getattr(getattr(loop, spec), name) == getattr(options, option)
    # Nothing in the worker's specs goes by a name the options do not have.
    for spec_name, spec_type in (("data", DataSpec), ("decoupled", DecoupledConfig), ("distill", DistillSpec),
                                 ("optim", OptimSpec)):
        for f in fields(spec_type):
            assert (spec_name, f.name) in reached | set(SHARED) | DERIVED, f"{spec_type.__name__}.{f.name}"
    assert (loop.mode, loop.resume_from, loop.progress) == (options.mode, options.resume_from, options.progress)
    assert {f.name for f in fields(LoopConfig)} == set(SPEC_OF.values()) | {
        "mode", "resume_from", "progress", "init_path", "teacher_path", "teacher_logits_file", "record", "probe"}
    assert loop.init_path == options.model and loop.teacher_path == options.teacher
    assert TrainOptions.from_dict(loop.record) == options  # what each checkpoint's training_config.json holds


def test_the_data_spec_takes_local_paths_as_absolute(tmp_path, tiny_qa_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = changed_options(tmp_path, tiny_qa_checkpoint).replace(data="train.tsv", eval_data="held.tsv")
    loop = loop_config(options)
    assert (loop.data.data, loop.data.eval_data) == (str(tmp_path / "train.tsv"), str(tmp_path / "held.tsv"))
