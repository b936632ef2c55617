from pathlib import Path

import pytest
from transformers import BertConfig, BertModel

from orchestrator.tracking import Tracking, default_tracking_uri, flatten
from trainables.model.source import resolve_model_path
from trainables.option_checks import check_sources
from trainables.options import TrainOptions


def _config_dir(path: Path, layers: int = 2, hidden: int = 32) -> str:
    """A checkpoint of the given shape (options read its config.json; a model source must also hold weights)."""
    BertModel(BertConfig(vocab_size=128, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(path)
    return str(path)


@pytest.fixture
def teacher_dir(tmp_path):
    return _config_dir(tmp_path / "teacher", layers=4, hidden=32)


def test_defaults_are_a_valid_minilm_teacher_run():
    options = TrainOptions()
    assert options.mode == "teacher" and options.split == 0
    assert (resolve_model_path(options.model) / "config.json").is_file()
    assert not options.uses_teacher


def test_yaml_round_trip_and_string_numbers(tmp_path, teacher_dir):
    options = TrainOptions(mode="student", teacher=teacher_dir, split=2, compression_ratio=4, kd_ratio=0.75,
                           lrs_weight=0.5, max_passage_len=60, doc_stride=20, max_train_examples=10)
    path = tmp_path / "options.yaml"
    options.to_yaml(path)
    assert TrainOptions.from_yaml(path) == options
    # PyYAML reads 1e-4 as a string; the CLI gives strings for everything
    path.write_text("lr: 1e-4\nepochs: '3'\nuse_gpu: 'false'\nmax_eval_examples: null\n")
    loaded = TrainOptions.from_yaml(path)
    assert (loaded.lr, loaded.epochs, loaded.use_gpu, loaded.max_eval_examples) == (1e-4, 3, False, None)


def test_yaml_errors_name_the_file_and_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("splitt: 3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: splitt: unknown option"):
        TrainOptions.from_yaml(path)
    path.write_text("epochs: two\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: epochs='two' is not an integer"):
        TrainOptions.from_yaml(path)
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        TrainOptions.from_yaml(path)
    with pytest.raises(ValueError, match="cannot read"):
        TrainOptions.from_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"split": 5}, r"^split=5 is larger than the 4 layers of teacher"),
        ({"compression_ratio": 5}, r"^compression_ratio=5 does not divide the hidden size 32"),
        ({"hidden_weight": -0.5}, r"^hidden_weight=-0.5 must be >= 0"),
        ({"kd_ratio": 1.5}, r"^kd_ratio=1.5 must be in \[0, 1\]"),
        ({"teacher": None}, r"^teacher: not set"),
        ({"split": 0}, r"^split=0 for a student"),
        ({"model": "/no/such/model", "student_init": "pretrained"}, r"^model /no/such/model: no such directory"),
        ({"precision": "bf16"}, r"^precision='bf16' needs use_gpu"),
        ({"compression_phase1_epochs": 1}, r"^compression_phase1_epochs needs compression"),
        ({"compression_ratio": 2, "compression_phase1_epochs": 2}, r"^compression_phase1_epochs=2 leaves no joint"),
        ({"doc_stride": 127}, r"^doc_stride=127 is the overlap"),
        ({"max_passage_len": 100}, r"^max_question_len \+ max_passage_len = 164 exceeds the 128 positions"),
        ({"split": 4, "lrs_weight": 1.0}, r"^split=4 leaves no upper layer"),
        ({"mode": "teacher"}, r"^split=2, compression_ratio=1: a teacher is the full model"),
        ({"task": "ner"}, r"^task='ner' is unknown"),
        ({"data": "missing.json"}, r"^data='missing.json': no such file"),
        ({"epochs": 0}, r"^epochs=0 must be >= 1"),
    ],
)
def test_bad_options_name_the_field(teacher_dir, changes, message):
    base = dict(mode="student", teacher=teacher_dir, split=2, max_passage_len=60, doc_stride=20)
    with pytest.raises(ValueError, match=message):
        check_sources(TrainOptions(**{**base, **changes}))


def test_feature_losses_need_a_teacher_of_the_students_shape(tmp_path, teacher_dir):
    small = _config_dir(tmp_path / "small", layers=2, hidden=32)
    kwargs = dict(mode="student", teacher=teacher_dir, model=small, student_init="pretrained", split=1,
                  max_passage_len=60, doc_stride=20)
    assert check_sources(TrainOptions(**kwargs)).uses_teacher  # logit KD works across shapes
    with pytest.raises(ValueError, match=r"^teacher: 4 layers × 32 wide, the student 2 × 32"):
        check_sources(TrainOptions(**kwargs, hidden_weight=0.5))


def test_student_without_distillation_may_start_from_the_pretrained_model():
    options = TrainOptions(mode="student", split=3, kd_ratio=0.0, student_init="pretrained")
    assert not options.uses_teacher and options.init_source == options.model


def test_tracking_uri_rules(tmp_path, monkeypatch):
    uri = default_tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db" and uri.startswith("sqlite:////")
    monkeypatch.chdir(tmp_path)
    assert Tracking("sqlite:///rel/mlflow.db", "e").uri == f"sqlite:///{tmp_path.resolve()}/rel/mlflow.db"
    assert Tracking("http://127.0.0.1:5000", "e").uri == "http://127.0.0.1:5000"
    for bad in ("./mlruns", "file:///tmp/mlruns"):
        with pytest.raises(ValueError, match="refuses file stores"):
            Tracking(bad, "e")
    with pytest.raises(ValueError, match="^experiment: empty"):
        Tracking(uri, " ")


def test_flatten_joins_nested_keys():
    assert flatten({"a": 1, "b": {"c": None, "d": {"e": 0.5}}}) == {"a": "1", "b.c": "None", "b.d.e": "0.5"}


def test_command_line_overrides_the_yaml_file(tmp_path, teacher_dir):
    from orchestrator.cli import build_parser
    from orchestrator.commands.train import options_from_args

    path = tmp_path / "student.yaml"
    TrainOptions(mode="student", teacher=teacher_dir, split=2, max_passage_len=60, doc_stride=20).to_yaml(path)
    args = build_parser().parse_args(["train", "--config", str(path), "--split", "3", "--lr", "3e-4",
                                      "--no-progress", "--max-train-examples", "100"])
    options = options_from_args(args)
    assert (options.split, options.lr, options.progress, options.max_train_examples) == (3, 3e-4, False, 100)
    assert options.teacher == teacher_dir and options.max_passage_len == 60


def test_cli_prints_one_line_for_bad_options(capsys):
    from orchestrator.cli import main

    code = main(["train", "--mode", "student", "--split", "99", "--kd-ratio", "0", "--student-init", "pretrained"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "decouple train: error: split=99 is larger than the 6 layers of model 'minilm-l6'; use 1..6"


# ---- the options schema: roles on the fields, no file read on construction -----------------------------------------
def test_every_field_declares_its_roles():
    from dataclasses import fields

    from trainables.options import ROLES

    for f in fields(TrainOptions):
        assert "roles" in f.metadata and f.metadata["roles"] <= set(ROLES), f"{f.name}: declare it with option()"


def test_the_teacher_key_is_pinned():
    """Existing teachers are found by this key under <storage>/teachers/: the fields' roles must not move it."""
    from trainables.trial_reuse import teacher_key

    assert teacher_key(TrainOptions()) == "f838c2c20966"
    assert teacher_key(TrainOptions(task="pair", lr=3e-5, epochs=3, max_passage_len=128, seed=7,
                                    dropout=0.2)) == "07023f8483a2"


def test_the_speed_key_is_pinned():
    from trainables.speed.trial import BenchSettings
    from trainables.trial_reuse import speed_key

    options = TrainOptions(mode="student", split=3, kd_ratio=0.0, student_init="pretrained", compression_ratio=4,
                           cache_dtype="int8")
    assert speed_key(options, BenchSettings(), 1.0) == "b02c49a943a7"


def test_construction_and_replace_read_no_file(monkeypatch):
    import trainables.option_checks as checks

    monkeypatch.setattr(checks, "_check_model_fits", lambda o: (_ for _ in ()).throw(AssertionError("read")))
    options = TrainOptions(model="/no/such/model", data="missing.json").replace(split=0, lr=1e-4)
    assert options.model == "/no/such/model"  # checked only when asked: check_sources
