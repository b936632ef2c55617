"""The per-worker training loop that Ray Train's `TorchTrainer` runs: teachers, distilled students, compression.

One loop serves every mode (see `LoopConfig`):

- **teacher**: the full model (split 0) fine-tuned on the task loss;
- **student**: a decoupled model (split k, compression r) trained on (1−ρ)·task + ρ·KD (ρ = kd_ratio) plus optional
  feature losses (last-layer hidden states, last-layer attention, DeFormer's LRS) against a frozen teacher. With logit KD alone the
  teacher's logits are computed once before the first epoch (each worker a share, then all-gathered; or loaded from
  `LoopConfig.teacher_logits_file`, which the first run of a teacher and data writes) and looked up per batch, so a
  distillation step costs what a plain fine-tuning step costs;
- **two-phase compression** (Decoupled Transformer blog): the first ``phase1_epochs`` train only the compressor and
  decompressor to reconstruct the uncompressed lower passage states; later epochs train everything jointly.

Every epoch ends with evaluation on the held-out split (rank 0, official SQuAD EM/F1 or accuracy) and one
`ray.train.report` carrying the metrics and, from rank 0, a checkpoint: the model's `save_pretrained` directory plus
``training_config.json``, ``trainer_state.json`` / ``optimizer.pt`` (to resume at the right step), ``metrics.json``
and ``predictions.json``.
"""
from __future__ import annotations

import io
import json
import math
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from transformers import AutoTokenizer

from trainables import storage
from trainables.augment import masked_batch
from trainables.decoupled import DecoupledModel, DecoupledOutput
from trainables.evaluation import evaluate_pairs, evaluate_qa
from trainables.features import PairFeatures, QAFeatures
from trainables.loop_config import (  # noqa: F401  (the checkpoint layout, re-exported)
    METRICS,
    OPTIMIZER_STATE,
    PREDICTIONS,
    TRAINER_STATE,
    TRAINING_CONFIG,
    DataSpec,
    LoopConfig,
)
from trainables.losses import (
    attention_kl,
    cross_entropy,
    distillation_kl,
    joint_mask,
    layerwise_representation_loss,
    masked_mse,
    relative_mse,
    span_candidates,
    span_cross_entropy,
    span_distillation_kl,
)
from trainables.optim import autocast, build_optimizer, grad_scaler, linear_schedule, seed_everything
from trainables.pairs import build_pair_features, load_pairs
from trainables.qa_features import build_qa_features
from trainables.squad import load_squad, split_by_article

# Loss terms in a fixed order, so every worker sums the same vector in the all-reduce.
TERMS = ("loss", "ce", "kd", "hidden", "attention", "lrs", "reconstruction")

Report = Callable[[dict, str | None], None]  # (metrics, checkpoint dir written by this worker or None)


# ---- data ---------------------------------------------------------------------------------------------------------
@dataclass
class TaskData:
    """Model-ready training and evaluation rows of one task, with the loaders' kept/skipped summaries."""

    train: QAFeatures | PairFeatures
    eval: QAFeatures | PairFeatures
    num_labels: int
    label_names: tuple[str, ...]
    summaries: list[str]
    problems: int = 0
    """Examples the loaders skipped or repaired: a quiet worker (a sweep trial) shows the summaries only then."""


def load_task_data(spec: DataSpec, tokenizer) -> TaskData:
    """Load, split and featurize the training and evaluation data of ``spec.task``."""
    return _load_qa(spec, tokenizer) if spec.task == "qa" else _load_pair_data(spec, tokenizer)


def _load_qa(spec: DataSpec, tokenizer) -> TaskData:
    examples, report = load_squad(spec.source, split="train")
    summaries = [report.summary()]
    if spec.eval_source is None:
        train, held_out = split_by_article(examples, eval_articles=spec.eval_articles, seed=spec.seed)
    else:
        train = examples
        held_out, held_out_report = load_squad(spec.eval_source, split="validation")
        summaries.append(held_out_report.summary())
    cut = dict(max_question_len=spec.max_question_len, max_passage_len=spec.max_passage_len,
               doc_stride=spec.doc_stride)
    train_features, train_report = build_qa_features(train[: spec.max_train_examples], tokenizer, **cut,
                                                     source="train")
    eval_features, eval_report = build_qa_features(held_out[: spec.max_eval_examples], tokenizer, **cut,
                                                   source="eval")
    summaries += [train_report.summary(), eval_report.summary()]
    reports = [report, train_report, eval_report] + ([] if spec.eval_source is None else [held_out_report])
    return TaskData(train_features, eval_features, 2, (), summaries, _problems(reports))


def _load_pair_data(spec: DataSpec, tokenizer) -> TaskData:
    examples, names, report = load_pairs(spec.source, split="train", labels=spec.labels)
    summaries, reports = [report.summary()], [report]
    if spec.eval_source is None:
        order = list(range(len(examples)))
        random.Random(spec.seed).shuffle(order)
        n_eval = max(1, round(spec.eval_fraction * len(examples)))
        held_out = [examples[i] for i in sorted(order[:n_eval])]
        train = [examples[i] for i in sorted(order[n_eval:])]
    else:
        train = examples
        held_out, eval_names, eval_report = load_pairs(spec.eval_source, split="validation", labels=spec.labels)
        summaries.append(eval_report.summary())
        reports.append(eval_report)
        if eval_names != names:
            raise ValueError(f"eval_data: labels {eval_names} differ from the training labels {names}")
    cut = dict(max_question_len=spec.max_question_len, max_passage_len=spec.max_passage_len, label_names=names)
    return TaskData(
        build_pair_features(train[: spec.max_train_examples], tokenizer, **cut),
        build_pair_features(held_out[: spec.max_eval_examples], tokenizer, **cut),
        len(names),
        names,
        summaries,
        _problems(reports),
    )


def _problems(reports) -> int:
    return sum(r.skipped + r.warnings for r in reports)


class _Rows(Dataset):
    """Training rows as dicts of tensors, each with its row ``index`` (the key into cached teacher logits)."""

    def __init__(self, features: QAFeatures | PairFeatures):
        self.tensors = {
            "question_ids": features.question_ids,
            "question_mask": features.question_mask,
            "passage_ids": features.passage_ids,
            "passage_mask": features.passage_mask,
        }
        if isinstance(features, QAFeatures):
            self.tensors.update(start_positions=features.start_positions, end_positions=features.end_positions)
        else:
            self.tensors["labels"] = features.labels

    def __len__(self) -> int:
        return int(self.tensors["question_ids"].shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"index": torch.tensor(i), **{k: v[i] for k, v in self.tensors.items()}}


# ---- models -------------------------------------------------------------------------------------------------------
class _Objective(nn.Module):
    """The student as DDP wraps it, so phase-1 reconstruction also passes through DDP's forward (gradient sync)."""

    def __init__(self, student: DecoupledModel):
        super().__init__()
        self.student = student

    def forward(self, batch: dict, *, reconstruct: bool = False, hidden: bool = False, attention: bool = False):
        s = self.student
        if reconstruct:
            # The target is fixed: only the compression layers learn in phase 1.
            with torch.no_grad():
                target = s.encode_passage(batch["passage_ids"], batch["passage_mask"], compress=False,
                                          store=False).values
            return {"reconstructed": s.decompress(s.compress(target)), "target": target}
        return s(batch["question_ids"], batch["question_mask"], batch["passage_ids"], batch["passage_mask"],
                 output_hidden_states=hidden, output_attentions=attention)


def build_student(cfg: LoopConfig, num_labels: int, checkpoint_dir: Path | None) -> DecoupledModel:
    """The trained model: from a checkpoint to resume, else decoupled from ``cfg.init_path``."""
    config = replace(cfg.decoupled, num_labels=num_labels)
    if checkpoint_dir is None:
        model = DecoupledModel.from_hf(cfg.init_path, config)
    else:
        model = DecoupledModel.from_pretrained(checkpoint_dir)
        if model.config != config:
            raise ValueError(f"resume_from: the checkpoint {checkpoint_dir} holds a model with {model.config}, "
                             f"the options ask for {config}; resume with the options it was trained with")
    return model


def name_classes(model: DecoupledModel, names: tuple[str, ...]) -> None:
    """Record the data's class names in the model's config (``id2label`` / ``label2id``, saved in config.json), so the
    checkpoint says which class each logit is and evaluation can check its data against them."""
    model.hf_config.id2label = dict(enumerate(names))
    model.hf_config.label2id = {name: i for i, name in enumerate(names)}


def set_dropout(model: nn.Module, p: float) -> None:
    """Every dropout layer of ``model`` drops with probability ``p`` (the saved config keeps the original rate)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p


def load_tokenizer(path: Path):
    """The fast tokenizer saved next to a checkpoint's weights."""
    try:
        return AutoTokenizer.from_pretrained(str(path), use_fast=True)
    except (OSError, ValueError):
        raise ValueError(f"model: {path} has no tokenizer files; save the tokenizer next to the weights") from None


def build_teacher(cfg: LoopConfig, num_labels: int) -> DecoupledModel:
    """The frozen full teacher (split 0) in eval mode."""
    teacher = DecoupledModel.from_pretrained(cfg.teacher_path, split=0, compression_ratio=1, cross_embeddings=False,
                                             task=cfg.decoupled.task, num_labels=num_labels)
    teacher.eval()
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher


def _logits(out: DecoupledOutput) -> torch.Tensor:
    """Task logits as one tensor: (B, 2, T) start/end for QA, (B, C) for pairs."""
    if out.start_logits is not None:
        return torch.stack([out.start_logits, out.end_logits], dim=1)
    return out.logits


# ---- the loop -----------------------------------------------------------------------------------------------------
def run_worker(cfg: LoopConfig) -> None:
    """One Ray Train worker's whole run (`loop_config.train_loop_per_worker` calls it)."""
    import ray.train
    import ray.train.torch

    # Models in a bucket are read from this node's local copy.
    cfg = replace(cfg, init_path=str(storage.local_copy(cfg.init_path)),
                  teacher_path=cfg.teacher_path and str(storage.local_copy(cfg.teacher_path)))
    context = ray.train.get_context()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None and cfg.resume_from is not None:
        checkpoint = ray.train.Checkpoint(cfg.resume_from)  # a directory or a bucket URI

    def report(metrics: dict, checkpoint_dir: str | None) -> None:
        saved = None if checkpoint_dir is None else ray.train.Checkpoint.from_directory(checkpoint_dir)
        ray.train.report(metrics, checkpoint=saved, checkpoint_dir_name=f"epoch_{int(metrics['epoch']):03d}")

    worker = Worker(cfg, context.get_world_rank(), context.get_world_size(), ray.train.torch.get_device())
    if checkpoint is None:
        worker.run(None, report)
    else:
        with checkpoint.as_directory() as resume_dir:
            worker.run(Path(resume_dir), report)


class Worker:
    """One data-parallel replica. Collectives are used only when ``world_size > 1``."""

    def __init__(self, cfg: LoopConfig, rank: int, world_size: int, device: torch.device):
        self.cfg, self.rank, self.world_size, self.device = cfg, rank, world_size, device
        self.phase = 0
        self.global_step = 0
        self.optimizer = self.scheduler = None
        self.teacher = None
        self.masking: tuple | None = None
        self.teacher_logits: torch.Tensor | None = None
        self.train_seconds = 0.0
        self.setup_metrics: dict = {}
        self.probe_metrics: dict = {}
        self.scaler = grad_scaler(cfg.optim.precision, device)

    # ---- setup ----------------------------------------------------------------------------------------------------
    def run(self, resume_dir: Path | None, report: Report) -> None:
        """Train from scratch or from ``resume_dir``; ``report`` is called once per epoch."""
        start_epoch = self.setup(resume_dir)
        once = self.setup_metrics
        for epoch in range(start_epoch, self.cfg.epochs):
            self._enter_phase(self.cfg.phase_of(epoch), optimizer_state=None)
            metrics = {**self._train_epoch(epoch), **once, **self.probe_metrics}
            once = {}
            evaluation, predictions = self._evaluate()
            metrics.update(evaluation)
            self._report(epoch, metrics, predictions, report)

    def setup(self, resume_dir: Path | None) -> int:
        """Data, model, optimizer state and teacher (logits); returns the first epoch to train."""
        cfg = self.cfg
        if cfg.probe is not None and self.rank == 0:  # first: on a quiet worker, before anything is seeded
            self.probe_metrics = dict(cfg.probe())
        seed_everything(cfg.seed)
        tokenizer = load_tokenizer(resume_dir or Path(cfg.init_path))
        self.data = load_task_data(cfg.data, tokenizer)
        if self.cfg.progress or self.data.problems:  # a sweep trial's console shows only data with problems
            self._say(*self.data.summaries)
        self.student = build_student(cfg, self.data.num_labels, resume_dir)
        self.student.tokenizer = tokenizer
        if cfg.decoupled.task == "pair":
            name_classes(self.student, self.data.label_names)
        if cfg.mask_augment > 0:
            if tokenizer.mask_token_id is None:
                raise ValueError("mask_augment: the model's tokenizer has no mask token; set mask_augment to 0")
            special = torch.tensor(tokenizer.all_special_ids, device=self.device)  # on the device once, not per step
            self.masking = (cfg.mask_augment, tokenizer.mask_token_id, special)
        if cfg.optim.dropout is not None:
            set_dropout(self.student, cfg.optim.dropout)
        self.model = self._prepare_model()
        self.loader, self.sampler = self._train_loader()
        start_epoch = self._restore(resume_dir)
        if start_epoch >= cfg.epochs:
            raise ValueError(f"resume_from: the checkpoint already finished epoch {start_epoch} of {cfg.epochs}; "
                             "raise epochs to train further")
        # Once per attempt: the step it starts from (0 when fresh; the checkpoint's step after a restart or resume).
        self.setup_metrics = {**self._setup_teacher(), "start_step": self.global_step}
        self._enter_phase(cfg.phase_of(start_epoch), optimizer_state=None, first_epoch=start_epoch)
        torch.manual_seed(cfg.seed + 1000 * self.rank + start_epoch)  # dropout differs across replicas and resumes
        return start_epoch

    def _prepare_model(self) -> nn.Module:
        objective = _Objective(self.student)
        if self.world_size == 1:
            return objective.to(self.device)
        import ray.train.torch

        # Phase 1 leaves all but the compression layers without gradients, which DDP must be told.
        kwargs = {"find_unused_parameters": self.cfg.phase1_epochs > 0}
        return ray.train.torch.prepare_model(objective, parallel_strategy_kwargs=kwargs)

    def _train_loader(self) -> tuple[DataLoader, DistributedSampler]:
        rows = _Rows(self.data.train)
        # Our own sampler (also for one worker): the order of epoch e depends only on (seed, e), so resumes repeat it.
        sampler = DistributedSampler(rows, num_replicas=self.world_size, rank=self.rank, shuffle=True,
                                     seed=self.cfg.seed)
        loader = DataLoader(rows, batch_size=self.cfg.batch_size, sampler=sampler)
        if self.world_size > 1:
            import ray.train.torch

            loader = ray.train.torch.prepare_data_loader(loader, add_dist_sampler=False)
        return loader, sampler

    def _restore(self, resume_dir: Path | None) -> int:
        """Load optimizer/scheduler state and counters from ``resume_dir``; returns the first epoch to run."""
        if resume_dir is None:
            return 0
        state = json.loads((resume_dir / TRAINER_STATE).read_text())
        self.global_step = state["global_step"]
        epoch = state["epoch"]
        # A checkpoint from the last epoch of phase 1 resumes into a fresh phase-2 optimizer, as an unbroken run does.
        resumable = (resume_dir / OPTIMIZER_STATE).is_file()  # a finished, published model keeps no optimizer state
        if resumable and epoch < self.cfg.epochs and self.cfg.phase_of(epoch) == state["phase"]:
            saved = torch.load(resume_dir / OPTIMIZER_STATE, map_location=self.device, weights_only=True)
            self._enter_phase(state["phase"], optimizer_state=saved)
        fresh = "" if resumable else " with a fresh optimizer (the checkpoint keeps no optimizer state)"
        self._say(f"resumed from {resume_dir} after epoch {epoch} (step {self.global_step}){fresh}")
        return epoch

    def _enter_phase(self, phase: int, optimizer_state: dict | None, first_epoch: int | None = None) -> None:
        """A fresh optimizer and schedule at the start of each phase (or the saved ones when resuming inside it).
        The schedule spans the phase from ``first_epoch`` (default: the phase's first epoch) to its end, so a model
        resumed without optimizer state warms up and decays over the epochs it has left."""
        if phase == self.phase:
            return
        cfg = self.cfg
        self.phase = phase
        if first_epoch is None:
            first_epoch = 0 if phase == 1 else cfg.phase1_epochs
        epochs = (cfg.phase1_epochs if phase == 1 else cfg.epochs) - first_epoch
        named = list(self.student.named_parameters())
        if phase == 1:
            named = [(n, p) for n, p in named if n.startswith(("compressor.", "decompressor."))]
        self.optimizer = build_optimizer(named, cfg.optim)
        self.scheduler = linear_schedule(self.optimizer, epochs * len(self.loader), cfg.optim.warmup_ratio)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state["optimizer"])
            self.scheduler.load_state_dict(optimizer_state["scheduler"])
            self.scaler.load_state_dict(optimizer_state["scaler"])

    def _setup_teacher(self) -> dict:
        """Load the teacher; with logit KD alone, take its logits from the cache, or compute them once (and cache
        them) and drop it. Returns one-off metrics."""
        if not self.cfg.uses_teacher:
            return {}
        if not self.cfg.caches_teacher_logits:
            self.teacher = build_teacher(self.cfg, self.data.num_labels).to(self.device)
            return {}
        start = time.perf_counter()
        location = self.cfg.teacher_logits_file
        self.teacher_logits = self._cached_teacher_logits(location)
        reused = self.teacher_logits is not None
        if not reused:
            self.teacher_logits = self._all_teacher_logits(build_teacher(self.cfg, self.data.num_labels).to(self.device))
            if location is not None and self.rank == 0:
                buffer = io.BytesIO()
                torch.save(self.teacher_logits.cpu(), buffer)
                storage.write_bytes(location, buffer.getvalue())
        return {"teacher_logits_s": time.perf_counter() - start, "teacher_logits_reused": float(reused)}

    def _cached_teacher_logits(self, location: str | None) -> torch.Tensor | None:
        """The cached logits at ``location`` when they exist and fit this run's training rows, else None."""
        if location is None or not storage.exists(location):
            return None
        logits = torch.load(io.BytesIO(storage.read_bytes(location)), map_location=self.device, weights_only=True)
        rows = _Rows(self.data.train)
        return logits if logits.shape[0] == len(rows) else None

    @torch.no_grad()
    def _all_teacher_logits(self, teacher: DecoupledModel) -> torch.Tensor:
        """Teacher logits of every training row, (N, 2, T) or (N, C): each worker computes a share, then all-gather."""
        rows = _Rows(self.data.train)
        share = math.ceil(len(rows) / self.world_size)
        lo, hi = min(len(rows), self.rank * share), min(len(rows), (self.rank + 1) * share)
        chunks = []
        for start in range(lo, hi, self.cfg.eval_batch_size):
            batch = {k: v[start: min(hi, start + self.cfg.eval_batch_size)].to(self.device)
                     for k, v in rows.tensors.items()}
            with autocast(self.cfg.optim.precision, self.device):
                chunks.append(_logits(self._teacher_forward(teacher, batch, False, False)).float())
        local = torch.cat(chunks) if chunks else torch.empty(0, device=self.device)
        if self.world_size == 1:
            return local
        shape = self._teacher_logit_shape(teacher, rows)
        padded = torch.zeros((share, *shape), device=self.device)
        padded[: local.shape[0]] = local.reshape(-1, *shape)
        gathered = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(gathered, padded)
        return torch.cat(gathered)[: len(rows)]

    def _teacher_logit_shape(self, teacher: DecoupledModel, rows: _Rows) -> tuple[int, ...]:
        if self.cfg.decoupled.task == "qa":
            return (2, rows.tensors["question_ids"].shape[1] + rows.tensors["passage_ids"].shape[1])
        return (teacher.config.num_labels,)

    @staticmethod
    def _teacher_forward(teacher: DecoupledModel, batch: dict, hidden: bool, attention: bool) -> DecoupledOutput:
        return teacher(batch["question_ids"], batch["question_mask"], batch["passage_ids"], batch["passage_mask"],
                       output_hidden_states=hidden, output_attentions=attention)

    # ---- training -------------------------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> dict:
        """One pass over this worker's shard; returns the epoch's mean loss terms (over all workers) and speed."""
        self.model.train()
        self.sampler.set_epoch(epoch)
        sums = torch.zeros(len(TERMS) + 2, device=self.device)  # loss terms, then steps, then rows
        active: set[str] = set()
        progress = _Progress(f"epoch {epoch + 1}/{self.cfg.epochs} (phase {self.phase})", len(self.loader),
                             enabled=self.cfg.progress and self.rank == 0)
        start = time.perf_counter()
        for batch in self.loader:
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            if self.masking is not None and self.phase == 2:
                batch = masked_batch(batch, *self.masking)
            terms = self.train_step(batch)
            for name, value in terms.items():
                sums[TERMS.index(name)] += value
                active.add(name)
            sums[-2] += 1
            sums[-1] += batch["index"].shape[0]
            progress.step(terms["loss"])
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        steps = int(sums[-2].item())
        if self.world_size > 1:
            dist.all_reduce(sums)
        metrics = {f"train_{name}": (sums[TERMS.index(name)] / sums[-2]).item() for name in TERMS if name in active}
        metrics.update(self._shares(metrics))
        metrics.update(
            epoch=epoch + 1,
            step=self.global_step,
            phase=self.phase,
            lr=self.scheduler.get_last_lr()[0],
            train_s=seconds,
            train_total_s=self.train_seconds,
            train_steps_per_s=steps / seconds,
            train_rows_per_s=sums[-1].item() / seconds,
        )
        return metrics

    def _shares(self, means: dict[str, float]) -> dict[str, float]:
        """Each weighted term's part of the epoch's mean loss, in percent (``share_kd`` = 100·ρ·kd / loss): which
        term does the work."""
        d, total = self.cfg.distill, means.get("train_loss", 0.0)
        if self.phase == 1 or not self.cfg.uses_teacher or total <= 0:
            return {}
        weights = {"ce": 1 - d.ratio, "kd": d.ratio, "hidden": d.hidden_weight, "attention": d.attention_weight,
                   "lrs": d.lrs_weight}
        return {f"share_{name}": 100 * w * means[f"train_{name}"] / total for name, w in weights.items()
                if f"train_{name}" in means}

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One optimizer step on ``batch`` (tensors on this worker's device); returns the detached loss terms."""
        with autocast(self.cfg.optim.precision, self.device):
            terms = self._reconstruction_terms(batch) if self.phase == 1 else self._task_terms(batch)
        self.scaler.scale(terms["loss"]).backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.cfg.optim.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.model.zero_grad(set_to_none=True)
        self.global_step += 1
        return {name: value.detach() for name, value in terms.items()}

    def _reconstruction_terms(self, batch: dict) -> dict[str, torch.Tensor]:
        out = self.model(batch, reconstruct=True)
        loss = masked_mse(out["reconstructed"], out["target"], batch["passage_mask"])
        return {"loss": loss, "reconstruction": loss}

    def _task_terms(self, batch: dict) -> dict[str, torch.Tensor]:
        """Task loss, plus distillation and feature losses for students; ``loss`` is their weighted sum."""
        d = self.cfg.distill
        live_teacher = self.teacher is not None
        need_hidden = live_teacher and (d.hidden_weight > 0 or d.lrs_weight > 0)
        need_attention = live_teacher and d.attention_weight > 0
        out = self.model(batch, hidden=need_hidden, attention=need_attention)
        valid = span_candidates(batch["question_mask"], batch["passage_mask"]) if out.logits is None else None
        terms = {"ce": self._hard_loss(out, batch, valid)}
        if not self.cfg.uses_teacher:
            return {"loss": terms["ce"], **terms}
        teacher_out = None
        if live_teacher:
            with torch.no_grad():
                teacher_out = self._teacher_forward(self.teacher, batch, need_hidden, need_attention)
        loss = (1 - d.ratio) * terms["ce"]
        if d.ratio > 0:
            target = self.teacher_logits[batch["index"]] if teacher_out is None else _logits(teacher_out)
            terms["kd"] = self._soft_loss(out, target, valid)
            loss = loss + d.ratio * terms["kd"]
        if teacher_out is not None:
            features = self._feature_terms(out, teacher_out, batch)
            terms.update(features)
            loss = loss + sum(getattr(d, f"{name}_weight") * value for name, value in features.items())
        return {"loss": loss, **terms}

    @staticmethod
    def _hard_loss(out: DecoupledOutput, batch: dict, valid: torch.Tensor | None) -> torch.Tensor:
        if out.logits is not None:
            return cross_entropy(out.logits, batch["labels"])
        return span_cross_entropy(out.start_logits, out.end_logits, batch["start_positions"], batch["end_positions"],
                                  valid)

    def _soft_loss(self, out: DecoupledOutput, target: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """T²·KL against teacher logits ``target``: (B, 2, T) start/end for QA, (B, C) for pairs."""
        temperature = self.cfg.distill.temperature
        if out.logits is not None:
            return distillation_kl(out.logits, target, temperature)
        return span_distillation_kl(out.start_logits, out.end_logits, target[:, 0], target[:, 1], temperature, valid)

    def _feature_terms(self, out: DecoupledOutput, teacher: DecoupledOutput, batch: dict) -> dict[str, torch.Tensor]:
        d, mask = self.cfg.distill, joint_mask(batch["question_mask"], batch["passage_mask"])
        terms = {}
        if d.hidden_weight > 0:
            terms["hidden"] = relative_mse(out.hidden_states[-1], teacher.hidden_states[-1], mask)
        if d.attention_weight > 0:
            terms["attention"] = attention_kl(out.last_attention, teacher.last_attention, mask)
        if d.lrs_weight > 0:
            terms["lrs"] = layerwise_representation_loss(out.hidden_states, teacher.hidden_states,
                                                         self.cfg.decoupled.split, mask)
        return terms

    # ---- evaluation and checkpoints -------------------------------------------------------------------------------
    def _evaluate(self) -> tuple[dict, dict]:
        """Held-out metrics (computed on rank 0, shared with all) and rank 0's predictions by example id."""
        metrics, predictions = {}, {}
        if self.rank == 0:
            start = time.perf_counter()
            metrics, predictions = self._score()
            metrics["eval_s"] = time.perf_counter() - start
        if self.world_size > 1:
            shared = [metrics]
            dist.broadcast_object_list(shared, src=0)
            metrics = shared[0]
        return metrics, predictions

    def _score(self) -> tuple[dict, dict]:
        data, kwargs = self.data.eval, dict(batch_size=self.cfg.eval_batch_size, device=self.device)
        if self.cfg.decoupled.task == "qa":
            version_2 = any(ex.is_impossible for ex in data.examples)
            scores, predictions = evaluate_qa(self.student, data, version_2=version_2, **kwargs)
            headline = scores["f1"]
        else:
            scores, labels = evaluate_pairs(self.student, data, **kwargs)
            predictions = {ex.id: self.data.label_names[y] for ex, y in zip(data.examples, labels)}
            headline = scores["accuracy"]
        numeric = {f"eval_{k}": float(v) for k, v in scores.items() if isinstance(v, (int, float))}
        return {**numeric, "eval_score": float(headline)}, predictions

    def _report(self, epoch: int, metrics: dict, predictions: dict, report: Report) -> None:
        self._say(f"epoch {epoch + 1}/{self.cfg.epochs}: " + ", ".join(
            f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith(("train_loss", "eval_", "share_"))))
        if self.rank != 0:
            report(metrics, None)
            return
        with tempfile.TemporaryDirectory() as folder:
            self._save(Path(folder), epoch, metrics, predictions)
            report(metrics, folder)

    def _save(self, folder: Path, epoch: int, metrics: dict, predictions: dict) -> None:
        self.student.save_pretrained(folder)
        state = {"epoch": epoch + 1, "phase": self.phase, "global_step": self.global_step}
        (folder / TRAINER_STATE).write_text(json.dumps(state, indent=1))
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict()}, folder / OPTIMIZER_STATE)
        (folder / TRAINING_CONFIG).write_text(json.dumps(self.cfg.record, indent=1, default=str))
        (folder / METRICS).write_text(json.dumps(metrics, indent=1))
        (folder / PREDICTIONS).write_text(json.dumps(predictions, indent=1, ensure_ascii=False))

    def _say(self, *lines: str) -> None:
        if self.rank == 0:
            for line in lines:
                print(f"[train] {line}", flush=True)


class _Progress:
    """A progress bar drawn as one log line per tenth of an epoch: Ray forwards worker output line by line, so
    carriage-return redraws turn into noise on the driver's console."""

    def __init__(self, label: str, total: int, *, enabled: bool):
        self.label, self.total, self.enabled = label, max(1, total), enabled
        self.done = self.shown = 0
        self.start = time.perf_counter()

    def step(self, loss: torch.Tensor) -> None:
        self.done += 1
        tenths = self.done * 10 // self.total
        if not self.enabled or tenths == self.shown:
            return
        self.shown = tenths
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        left = f", {(self.total - self.done) / rate:.0f} s left" if self.done < self.total else ""
        print(f"[train] {self.label} [{'#' * tenths}{'.' * (10 - tenths)}] {self.done}/{self.total} steps, "
              f"{rate:.1f} steps/s{left}, loss {loss.item():.4f}", flush=True)
