"""The per-worker training loop that Ray Train's `TorchTrainer` runs: teachers, distilled students, compression.

One loop serves every mode (see `LoopConfig`):

- **teacher**: the full model (split 0) fine-tuned on the task loss;
- **student**: a decoupled model (split k, compression r) trained on (1−ρ)·task + ρ·KD (ρ = kd_ratio) plus optional
  feature losses (last-layer hidden states, last-layer attention, DeFormer's LRS) against a frozen teacher. With logit KD alone the
  teacher's logits are computed once before the first epoch (each worker a share, then all-gathered; or loaded from
  `LoopConfig.teacher_logits_file`, which the first run of a teacher and data writes) and looked up per batch, so a
  distillation step costs what a plain fine-tuning step costs;
- **any-split student** (``decoupled.splits``): one student trained to be cut at any split of a set; each step
  runs the student loss at several of them (`split_schedule.step_splits`, the sandwich rule) and steps once on their
  mean, and its last epoch is scored at every split of the set (``eval_*_k<split>``);
- **compression**: a fresh student's compressor and decompressor start at the principal subspace of its own passage
  states (`trainables.model.compression_fit`: the best linear reconstruction, in closed form); with two-phase
  compression (Decoupled Transformer blog) the first ``phase1_epochs`` then train only those two layers to reconstruct
  the uncompressed lower passage states; later epochs train everything jointly.

The seams live beside this module: the task's rows (`task_data`), the teacher and its logits (`teacher_logits`),
the loss of one batch (`loss_step`) and the checkpoint files (`checkpoints`); this module is the loop that runs them.

Every epoch ends with evaluation on the held-out split (rank 0, official SQuAD EM/F1 or accuracy) and one
`ray.train.report` carrying the metrics and, from rank 0, a checkpoint: the model's `save_pretrained` directory plus
``training_config.json``, ``trainer_state.json`` / ``optimizer.pt`` (to resume at the right step), ``metrics.json``
and ``predictions.json``.
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from transformers import AutoTokenizer

from trainables import storage
from trainables.model.compression_fit import fit_projection_pair
from trainables.model.decoupled import DecoupledModel
from trainables.tasks.registry import task_named
from trainables.training.augment import masked_batch
from trainables.training.checkpoints import optimizer_state, persist_checkpoint, save_checkpoint, trainer_state
from trainables.training.config import LoopConfig
from trainables.training.loss_step import TERMS, LossStep
from trainables.training.losses import relative_mse
from trainables.training.optim import autocast, build_optimizer, grad_scaler, linear_schedule, seed_everything
from trainables.training.split_schedule import step_splits
from trainables.training.task_data import Rows, load_task_data
from trainables.training.teacher_logits import (
    all_teacher_logits,
    build_teacher,
    cached_teacher_logits,
    save_teacher_logits,
    teacher_forward,
)

Report = Callable[[dict, str | None], None]  # (metrics, checkpoint dir written by this worker or None)
COMPRESSION_FIT_ROWS = 256
"""Training rows whose passage states set a fresh student's compression (SQuAD, P 192: ~45k tokens, seconds)."""


class _Objective(nn.Module):
    """The student as DDP wraps it, so phase-1 reconstruction also passes through DDP's forward (gradient sync)."""

    def __init__(self, student: DecoupledModel):
        super().__init__()
        self.student = student

    def forward(self, batch: dict, *, reconstruct: bool = False, hidden: bool = False, attention: bool = False,
                lower_cross: float = 0.0, split: int | None = None):
        s = self.student
        if split is not None and split != s.config.split:  # an any-split student's step at another of its splits
            with s.cut_at(split):
                return self(batch, reconstruct=reconstruct, hidden=hidden, attention=attention,
                            lower_cross=lower_cross)
        if reconstruct:
            # The target is fixed: only the compression layers learn in phase 1.
            with torch.no_grad():
                target = s.encode_passage(batch["passage_ids"], batch["passage_mask"], compress=False,
                                          store=False).values
            return {"reconstructed": s.decompress(s.compress(target)), "target": target}
        return s(batch["question_ids"], batch["question_mask"], batch["passage_ids"], batch["passage_mask"],
                 output_hidden_states=hidden, output_attentions=attention, lower_cross=lower_cross)


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


def reconstruction_error(compressor: nn.Linear, decompressor: nn.Linear, states: torch.Tensor) -> float:
    """`relative_mse` (the hidden-state losses' measure) of decompressor(compressor(x)) against x over (N, width)
    passage token states."""
    with torch.no_grad():
        x = states.to(compressor.weight)[None]  # (1, N, width)
        return relative_mse(decompressor(compressor(x)), x, x.new_ones(x.shape[:2])).item()


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


# ---- the loop -----------------------------------------------------------------------------------------------------
def run_worker(cfg: LoopConfig) -> None:
    """One Ray Train worker's whole run (`trainables.training.entry.train_loop_per_worker` calls it)."""
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
        ray.train.report(metrics, checkpoint=saved, checkpoint_dir_name=f"epoch_{int(metrics['epoch']):03d}",
                         checkpoint_upload_fn=persist_checkpoint)

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
        self.loss_steps = {k: LossStep(cfg.distill, k, cfg.uses_teacher) for k in cfg.decoupled.trained_splits}
        self.loss_step = self.loss_steps[cfg.decoupled.split]

    # ---- setup ----------------------------------------------------------------------------------------------------
    def run(self, resume_dir: Path | None, report: Report) -> None:
        """Train from scratch or from ``resume_dir``; ``report`` is called once per epoch."""
        start_epoch = self.setup(resume_dir)
        once = self.setup_metrics
        for epoch in range(start_epoch, self.cfg.optim.epochs):
            self._enter_phase(self.cfg.optim.phase_of(epoch), optimizer_state=None)
            metrics = {**self._train_epoch(epoch), **once, **self.probe_metrics,
                       "torch_threads": float(torch.get_num_threads())}  # the CPUs Ray gave this worker
            once = {}
            evaluation, predictions = self._evaluate(every_split=epoch == self.cfg.optim.epochs - 1)
            metrics.update(evaluation)
            self._report(epoch, metrics, predictions, report)

    def setup(self, resume_dir: Path | None) -> int:
        """Data, model, optimizer state and teacher (logits); returns the first epoch to train."""
        cfg = self.cfg
        if cfg.probe is not None and self.rank == 0:  # first: on a quiet worker, before anything is seeded
            self.probe_metrics = dict(cfg.probe())
        seed_everything(cfg.optim.seed)
        tokenizer = load_tokenizer(resume_dir or Path(cfg.init_path))
        self.data = load_task_data(cfg.data, tokenizer)
        if self.cfg.progress or self.data.problems:  # a sweep trial's console shows only data with problems
            self._say(*self.data.summaries)
        self.student = build_student(cfg, self.data.num_labels, resume_dir)
        self.student.tokenizer = tokenizer
        fitted = self._fit_compression() if resume_dir is None else {}
        task_named(cfg.decoupled.task).name_classes(self.student, self.data.label_names)
        if cfg.optim.mask_augment > 0:
            if tokenizer.mask_token_id is None:
                raise ValueError("mask_augment: the model's tokenizer has no mask token; set mask_augment to 0")
            special = torch.tensor(tokenizer.all_special_ids, device=self.device)  # on the device once, not per step
            self.masking = (cfg.optim.mask_augment, tokenizer.mask_token_id, special)
        if cfg.optim.dropout is not None:
            set_dropout(self.student, cfg.optim.dropout)
        self.model = self._prepare_model()
        self.loader, self.sampler = self._train_loader()
        start_epoch = self._restore(resume_dir)
        if start_epoch >= cfg.optim.epochs:
            raise ValueError(f"resume_from: the checkpoint already finished epoch {start_epoch} of {cfg.optim.epochs}; "
                             "raise epochs to train further")
        # Once per attempt: the step it starts from (0 when fresh; the checkpoint's step after a restart or resume).
        self.setup_metrics = {**self._setup_teacher(), **fitted, "start_step": self.global_step}
        self._enter_phase(cfg.optim.phase_of(start_epoch), optimizer_state=None, first_epoch=start_epoch)
        torch.manual_seed(cfg.optim.seed + 1000 * self.rank + start_epoch)  # dropout differs across replicas and resumes
        return start_epoch

    def _fit_compression(self) -> dict:
        """A fresh compressing student's compressor and decompressor set to the principal subspace of its own
        uncompressed passage states over up to ``COMPRESSION_FIT_ROWS`` training rows spread over the data
        (`compression_fit`). Every replica fits the same rows; DDP then starts them all from rank 0's weights.
        Returns the reconstruction error it starts from (``compression_fit_error``, `reconstruction_error`), or nothing
        without compression."""
        student = self.student
        if student.compressor is None:
            return {}
        start = time.perf_counter()
        student.to(self.device)  # as `_prepare_model` places it next
        rows = Rows(self.data.train)
        picked = torch.linspace(0, len(rows) - 1, min(COMPRESSION_FIT_ROWS, len(rows))).long().unique().tolist()
        states = []
        student.eval()
        with torch.no_grad():
            for batch in DataLoader(Subset(rows, picked), batch_size=self.cfg.optim.eval_batch_size):
                mask = batch["passage_mask"].to(self.device)
                lower = student.encode_passage(batch["passage_ids"].to(self.device), mask, compress=False,
                                               store=False).values  # (B, P, width)
                states.append(lower[mask.bool()].float().cpu())
        student.train()
        states = torch.cat(states)
        fit_projection_pair(student.compressor, student.decompressor, states)
        return {"compression_fit_error": reconstruction_error(student.compressor, student.decompressor, states),
                "compression_fit_s": time.perf_counter() - start}

    def _prepare_model(self) -> nn.Module:
        objective = _Objective(self.student)
        if self.world_size == 1:
            return objective.to(self.device)
        import ray.train.torch

        # Phase 1 leaves all but the compression layers without gradients, which DDP must be told.
        kwargs = {"find_unused_parameters": self.cfg.optim.compression_phase1_epochs > 0}
        return ray.train.torch.prepare_model(objective, parallel_strategy_kwargs=kwargs)

    def _train_loader(self) -> tuple[DataLoader, DistributedSampler]:
        rows = Rows(self.data.train)
        # Our own sampler (also for one worker): the order of epoch e depends only on (seed, e), so resumes repeat it.
        sampler = DistributedSampler(rows, num_replicas=self.world_size, rank=self.rank, shuffle=True,
                                     seed=self.cfg.optim.seed)
        loader = DataLoader(rows, batch_size=self.cfg.optim.batch_size, sampler=sampler)
        if self.world_size > 1:
            import ray.train.torch

            loader = ray.train.torch.prepare_data_loader(loader, add_dist_sampler=False)
        return loader, sampler

    def _restore(self, resume_dir: Path | None) -> int:
        """Load optimizer/scheduler state and counters from ``resume_dir``; returns the first epoch to run."""
        if resume_dir is None:
            return 0
        state = trainer_state(resume_dir)
        self.global_step = state["global_step"]
        epoch = state["epoch"]
        # A checkpoint from the last epoch of phase 1 resumes into a fresh phase-2 optimizer, as an unbroken run does.
        saved = optimizer_state(resume_dir, self.device)  # None: a finished, published model keeps none
        resumable = saved is not None
        if resumable and epoch < self.cfg.optim.epochs and self.cfg.optim.phase_of(epoch) == state["phase"]:
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
            first_epoch = 0 if phase == 1 else cfg.optim.compression_phase1_epochs
        epochs = (cfg.optim.compression_phase1_epochs if phase == 1 else cfg.optim.epochs) - first_epoch
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
        location, rows = self.cfg.teacher_logits_file, Rows(self.data.train)
        self.teacher_logits = cached_teacher_logits(location, rows, self.device)
        reused = self.teacher_logits is not None
        if not reused:
            teacher = build_teacher(self.cfg, self.data.num_labels).to(self.device)
            self.teacher_logits = all_teacher_logits(teacher, rows, self.cfg, self.rank, self.world_size, self.device)
            if location is not None and self.rank == 0:
                save_teacher_logits(location, self.teacher_logits)
        return {"teacher_logits_s": time.perf_counter() - start, "teacher_logits_reused": float(reused)}

    _teacher_forward = staticmethod(teacher_forward)

    # ---- training -------------------------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> dict:
        """One pass over this worker's shard; returns the epoch's mean loss terms (over all workers) and speed."""
        self.model.train()
        self.sampler.set_epoch(epoch)
        sums = torch.zeros(len(TERMS) + 2, device=self.device)  # loss terms, then steps, then rows
        active: set[str] = set()
        progress = _Progress(f"epoch {epoch + 1}/{self.cfg.optim.epochs} (phase {self.phase})", len(self.loader),
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
        if self.phase == 2:
            metrics.update(self.loss_step.shares(metrics))
            if self.cfg.distill.split_anneal > 0:
                metrics["lower_cross"] = self.lower_cross(self.global_step - 1)  # at the epoch's last step
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

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One optimizer step on ``batch`` (tensors on this worker's device) at this step's splits (one, but for an
        any-split student); returns the detached loss terms, averaged over those splits."""
        splits = step_splits(self.cfg.decoupled.trained_splits, self.cfg.distill.splits_per_step, self.global_step)
        mean: dict[str, torch.Tensor] = {}
        for split in splits:
            terms = self._split_terms(batch, split)
            # Backward per split frees its activations before the next; gradients add up to the mean's.
            self.scaler.scale(terms["loss"] / len(splits)).backward()
            for name, value in terms.items():
                mean[name] = mean.get(name, 0.0) + value.detach() / len(splits)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.cfg.optim.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.model.zero_grad(set_to_none=True)
        self.global_step += 1
        return mean

    def _split_terms(self, batch: dict, split: int) -> dict[str, torch.Tensor]:
        """The loss terms of ``batch`` with the student cut at ``split``."""
        with autocast(self.cfg.optim.precision, self.device):
            if self.phase == 1:
                return self.loss_step.reconstruction(self.model, batch)
            return self.loss_steps[split].task(self.model, batch, self.teacher, self.teacher_logits,
                                               self._teacher_forward, lower_cross=self.lower_cross(self.global_step))

    def lower_cross(self, global_step: int) -> float:
        """The weight of the lower layers' attention across segments at ``global_step`` (`split_anneal`): 1 falling
        linearly to 0 over the first ``split_anneal`` of phase 2's steps, then 0 (decoupled)."""
        phase2_steps = (self.cfg.optim.epochs - self.cfg.optim.compression_phase1_epochs) * len(self.loader)
        anneal_steps = self.cfg.distill.split_anneal * phase2_steps
        step = global_step - self.cfg.optim.compression_phase1_epochs * len(self.loader)
        return max(0.0, 1.0 - step / anneal_steps) if anneal_steps > 0 else 0.0

    # ---- evaluation and checkpoints -------------------------------------------------------------------------------
    def _evaluate(self, every_split: bool = False) -> tuple[dict, dict]:
        """Held-out metrics (computed on rank 0, shared with all) and rank 0's predictions by example id, at the
        student's split; with ``every_split``, an any-split student's metrics at each of its splits join them as
        ``eval_<name>_k<split>``."""
        metrics, predictions = {}, {}
        if self.rank == 0:
            start = time.perf_counter()
            metrics, predictions = self._score()
            if every_split and self.cfg.decoupled.splits:
                metrics.update(self._score_every_split(metrics))
            metrics["eval_s"] = time.perf_counter() - start
        if self.world_size > 1:
            shared = [metrics]
            dist.broadcast_object_list(shared, src=0)
            metrics = shared[0]
        return metrics, predictions

    def _score_every_split(self, at_own_split: dict) -> dict:
        """The student's held-out metrics at each of its splits as ``<name>_k<split>``; at its own split they are
        ``at_own_split``, scored already."""
        scores = {}
        for split in self.cfg.decoupled.splits:
            if split == self.student.config.split:
                at_split = at_own_split
            else:
                with self.student.cut_at(split):
                    at_split, _ = self._score()
            scores.update({f"{name}_k{split}": value for name, value in at_split.items()})
        return scores

    def _score(self) -> tuple[dict, dict]:
        task = task_named(self.cfg.decoupled.task)
        scores, predictions = task.evaluate(self.student, self.data.eval, self.data.label_names,
                                            batch_size=self.cfg.optim.eval_batch_size, device=self.device)
        numeric = {f"eval_{k}": float(v) for k, v in scores.items() if isinstance(v, (int, float))}
        return {**numeric, "eval_score": float(scores[task.metric])}, predictions

    def _report(self, epoch: int, metrics: dict, predictions: dict, report: Report) -> None:
        self._say(f"epoch {epoch + 1}/{self.cfg.optim.epochs}: " + ", ".join(
            f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith(("train_loss", "eval_", "share_"))))
        if self.rank != 0:
            report(metrics, None)
            return
        with tempfile.TemporaryDirectory() as folder:
            self._save(Path(folder), epoch, metrics, predictions)
            report(metrics, folder)

    def _save(self, folder: Path, epoch: int, metrics: dict, predictions: dict) -> None:
        state = {"epoch": epoch + 1, "phase": self.phase, "global_step": self.global_step}
        optimizer = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "scaler": self.scaler.state_dict()}
        save_checkpoint(folder, self.student, state, optimizer, self.cfg.record, metrics, predictions)

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
