"""What the driver hands each Ray Train worker (`LoopConfig`) and the checkpoint layout the loop writes.

Nothing here imports torch: Ray Train's controller and the sweep's trial drivers unpickle the config (and the entry
point, `trainables.training.entry`) without training anything, and importing torch and transformers would cost each of
them seconds per run.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from trainables import storage
from trainables.model.config import DecoupledConfig

TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.pt"
TRAINING_CONFIG = "training_config.json"
PREDICTIONS = "predictions.json"
METRICS = "metrics.json"
WEIGHTS = "model.safetensors"
PRECISIONS = ("fp32", "bf16", "fp16")
VERBOSE_ENV = "DECOUPLE_VERBOSE"
"""Set (non-empty) by ``decouple --verbose`` for the command and the workers it starts (`orchestrator.console`)."""


@dataclass(frozen=True)
class OptimSpec:
    """How parameters are updated, for how long, in what batches: the options of section ``optim``, by their names
    (`trainables.options`, where their defaults and documentation live)."""

    lr: float
    """Peak AdamW learning rate."""
    weight_decay: float
    """Decoupled weight decay; never applied to biases or LayerNorm weights (any 1-d parameter)."""
    warmup_ratio: float
    """Fraction of a phase's steps spent warming the learning rate up linearly from 0; then linear decay to 0."""
    max_grad_norm: float
    """Gradients are clipped to this global L2 norm; 0 turns clipping off."""
    precision: str
    """fp32, or bf16/fp16 autocast (GPU only; fp16 adds loss scaling)."""
    dropout: float | None
    """Dropout probability of the trained model's dropout layers while it trains; None keeps the checkpoint's."""
    mask_augment: float
    """Probability of masking each question/passage token of a training row, afresh every step (`augment`)."""
    epochs: int
    """Total epochs, phase 1 included."""
    compression_phase1_epochs: int
    """Leading epochs that train only the compressor/decompressor (0 = none)."""
    batch_size: int
    """Training rows per step per worker."""
    eval_batch_size: int
    """Rows per evaluation step."""
    seed: int
    """Seed of initialisation, data order and dropout (and of the held-out split: `DataSpec.seed`)."""

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay} must be >= 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if self.max_grad_norm < 0:
            raise ValueError(f"max_grad_norm={self.max_grad_norm} must be >= 0 (0 turns clipping off)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
        if not 0 <= self.compression_phase1_epochs < self.epochs:
            raise ValueError(f"compression_phase1_epochs={self.compression_phase1_epochs} must be in "
                             f"[0, epochs={self.epochs})")

    def phase_of(self, epoch: int) -> int:
        """1 while only the compression layers train, else 2 (0-based ``epoch``)."""
        return 1 if epoch < self.compression_phase1_epochs else 2


@dataclass(frozen=True)
class DataSpec:
    """Which data a run trains and evaluates on, and how it is cut into model inputs: the options of section
    ``data``, by their names (``data`` and ``eval_data`` as the driver resolved them, ``labels`` parsed)."""

    data: str
    """Training source for `load_squad` / `load_pairs` ('synthetic...', a file, a hub name)."""
    eval_data: str | None
    """Held-out source; None holds out part of ``data``."""
    task: str
    """qa or pair."""
    eval_articles: int
    """QA without eval_data: whole articles held out."""
    eval_fraction: float
    """Pairs without eval_data: fraction of examples held out."""
    max_question_len: int
    """Q."""
    max_passage_len: int
    """P."""
    doc_stride: int
    """Window overlap in tokens (QA)."""
    max_train_examples: int | None
    """Cap on training examples (after the held-out split); None = all."""
    max_eval_examples: int | None
    """Cap on evaluation examples; None = all."""
    seed: int
    """Seed of the held-out split (the run's `OptimSpec.seed`)."""
    labels: tuple[str, ...] | None
    """Pairs: the data's labels in class order (``--labels``); None = the set the data declares, else the task's."""


@dataclass(frozen=True)
class DistillSpec:
    """How a student learns from its teacher and across its splits (ignored for teachers): the options of section
    ``distill``, by their names."""

    kd_temperature: float
    """T of the soft targets."""
    kd_ratio: float
    """Weight of T²·KL against the teacher's logits; 1 − kd_ratio weighs the hard-label loss. 0 = no logit KD."""
    hidden_weight: float
    """Weight of the last-layer hidden-state relative MSE."""
    attention_weight: float
    """Weight of the last-layer per-query attention KL."""
    lrs_weight: float
    """Weight of the layerwise representation similarity over the upper layers."""
    split_anneal: float
    """Fraction of phase 2's steps over which the lower layers' attention across segments fades from 1 to 0."""
    splits_per_step: int
    """Any-split students (``decoupled.splits``): splits each step trains at (`split_schedule.step_splits`)."""

    @property
    def uses_features(self) -> bool:
        return self.hidden_weight > 0 or self.attention_weight > 0 or self.lrs_weight > 0

    @property
    def uses_teacher(self) -> bool:
        return self.kd_ratio > 0.0 or self.uses_features


@dataclass(frozen=True)
class LoopConfig:
    """Everything one worker needs, built by the driver from its options (`orchestrator.train.loop_config`; the
    defaults live there): one spec per options section, each setting under its option's name, and the run's
    locations resolved."""

    mode: str
    """teacher or student."""
    init_path: str
    """Checkpoint the trained model starts from (pre-trained encoder or fine-tuned teacher): a directory or a bucket
    URI (each worker loads it from its node's local copy)."""
    teacher_path: str | None
    """Frozen teacher checkpoint for distillation, a directory or a bucket URI; None when the run needs no teacher."""
    decoupled: DecoupledConfig
    """Section ``model``: split, compression, cache dtype, and the data's Q and task (num_labels is taken from the
    data)."""
    data: DataSpec
    """Section ``data``: data and tokenisation."""
    distill: DistillSpec
    """Section ``distill``: distillation losses and the any-split schedule (students only)."""
    optim: OptimSpec
    """Section ``optim``: optimizer, schedule, epochs, batches, precision, seed."""
    resume_from: str | None
    """Checkpoint (directory or bucket URI) to continue from when Ray has none to restore."""
    progress: bool
    """Progress bars on rank 0."""
    record: dict
    """The driver's options, written as ``training_config.json`` into every checkpoint."""
    probe: Callable[[], dict] | None = None
    """Run by rank 0 once per attempt before anything else, on the worker's device with its threads; the figures it
    returns are added to every report (a sweep times the trial's architecture this way)."""
    teacher_logits_file: str | None = None
    """File (local or bucket URI) holding logit KD's teacher logits over the training rows, shared by runs with the same
    teacher, data and precision (`teacher_logits_file`): loaded when present, written by the first run that computes
    them; None computes them every run."""

    def __post_init__(self) -> None:
        if self.mode not in ("teacher", "student"):
            raise ValueError(f"mode={self.mode!r} is unknown; use teacher or student")
        if self.mode == "student" and self.distill.uses_teacher and self.teacher_path is None:
            raise ValueError("teacher_path: distillation is on but no teacher checkpoint was given")

    @property
    def uses_teacher(self) -> bool:
        return self.mode == "student" and self.distill.uses_teacher

    @property
    def caches_teacher_logits(self) -> bool:
        """Logit KD alone on unmasked rows: teacher logits do not change, so they are computed once."""
        return self.uses_teacher and not self.distill.uses_features and self.optim.mask_augment == 0


def teacher_logits_file(cache: str, teacher: str, data: DataSpec, precision: str) -> str:
    """The file in the ``cache`` directory (or bucket URI) for the teacher logits of ``teacher`` (a checkpoint
    location, as the driver names it; its weights' size and modification time included, so a teacher retrained in
    place gets new logits) on the training rows ``data`` cuts, computed at ``precision``."""
    fs, path = storage.filesystem(storage.join(teacher, WEIGHTS))
    weights = fs.get_file_info(path)
    what = {"teacher": teacher, "weights": [weights.size, weights.mtime_ns], "data": asdict(data),
            "precision": precision}
    return storage.join(cache, hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16] + ".pt")
