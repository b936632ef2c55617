"""The timing harness: a full model against a decoupled student's live and cached paths, beside the FLOPs bound
(`trainables.speed.flops`). `decouple bench` and every sweep trial (on its training worker) time models with it.

Three paths are timed on the same random batch (all masks 1, so every path does the work `flops` counts):

- **full**: the Hugging Face task model that the decoupled model wraps (`DecoupledModel.hf`), run on the joint
  ``[question ; passage]`` ids — the original model as users run it, timed again beside every split;
- **live**: the decoupled model at split k computing passage states on the fly, ``model(q_ids, q_mask, p_ids, p_mask)``;
- **cached**: passage states made once by ``encode_passage`` and kept in host memory as a cache would (pinned on
  CUDA); the timed region copies them to the device, encodes the question and runs ``forward_upper``
  (dequantization and decompression included).

Each path runs ``warmup`` untimed calls, then the three are timed round-robin for ``repeats`` rounds under
``torch.inference_mode`` (on CUDA with events after a synchronisation), so a change in machine load hits all three.
Times are medians with the inter-quartile range. Peak memory is the growth of the peak over what was in use
before each call: ``max_memory_allocated`` on CUDA; on CPU the peak resident set size
(``VmHWM``, reset through ``/proc/self/clear_refs`` after ``malloc_trim``), since torch's CPU allocations are
invisible to ``tracemalloc``.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from trainables.model.devices import check_device
from trainables.speed.flops import ModelShape, speedup_bound
from trainables.speed.reliability import cores, load_average, unreliable_reasons

DEVICES = ("cpu", "cuda")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class TimingOptions:
    """How paths are timed; `BenchOptions` builds one for the CLI, sweep trials build it directly."""

    device: str = "cpu"
    """cpu or cuda: where the models and the batch run."""
    repeats: int = 5
    """Timed rounds; each round calls every path once. The median and inter-quartile range are reported."""
    warmup: int = 1
    """Untimed calls per path before timing (allocator, kernel selection, caches)."""

    def __post_init__(self) -> None:
        check_device(self.device)
        if self.repeats < 1:
            raise ValueError(f"repeats={self.repeats} must be >= 1")
        if self.warmup < 0:
            raise ValueError(f"warmup={self.warmup} must be >= 0")


@dataclass(frozen=True)
class Timing:
    """Wall-clock statistics of one path in milliseconds, plus its peak memory growth in MiB (None if unmeasured)."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    peak_mem_mib: float | None

    @classmethod
    def from_samples(cls, samples_ms: list[float], peak_mem_mib: float | None) -> "Timing":
        q1 = q3 = samples_ms[0]
        if len(samples_ms) > 1:  # "inclusive" quartiles stay within the samples
            q1, _, q3 = statistics.quantiles(samples_ms, n=4, method="inclusive")
        return cls(statistics.median(samples_ms), q1, q3, min(samples_ms), max(samples_ms), peak_mem_mib)


@dataclass(frozen=True)
class BenchBatch:
    """Token ids and masks of one batch (int64). question_*: (B, Q); passage_*: (B, P)."""

    question_ids: torch.Tensor
    question_mask: torch.Tensor
    passage_ids: torch.Tensor
    passage_mask: torch.Tensor

    @classmethod
    def random(cls, vocab: int, batch: int, q_len: int, p_len: int, seed: int) -> "BenchBatch":
        """Random ids, all masks 1 (no padding)."""
        gen = torch.Generator().manual_seed(seed)
        q = torch.randint(0, vocab, (batch, q_len), generator=gen)
        p = torch.randint(0, vocab, (batch, p_len), generator=gen)
        return cls(q, torch.ones_like(q), p, torch.ones_like(p))

    def to(self, device: str) -> "BenchBatch":
        return BenchBatch(*(t.to(device) for t in asdict(self).values()))


# ---- timing and memory --------------------------------------------------------------------------------------------
def memory_method(device: str) -> str:
    """How `Timing.peak_mem_mib` is measured on ``device``, in words."""
    if device == "cuda":
        return "CUDA max_memory_allocated growth over memory_allocated before the path"
    if os.access(_CLEAR_REFS, os.W_OK):
        return "peak RSS growth over RSS before the path (VmHWM reset via /proc/self/clear_refs after malloc_trim)"
    return "unavailable (no /proc/self/clear_refs to reset the peak RSS)"


def _reset_peak(device: torch.device) -> float | None:
    """Reset the peak-memory counter; return the memory in use now (MiB), None when it cannot be measured."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back so RSS starts from what is live
        _CLEAR_REFS.write_text("5")  # Linux: "5" resets VmHWM to the current RSS
    except OSError:
        return None
    return _proc_status_mib("VmRSS")


def _peak(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _proc_status_mib("VmHWM")


def _proc_status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise OSError(f"/proc/self/status has no {key}")


def _elapsed_ms(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    start_s = time.perf_counter()
    fn()
    return (time.perf_counter() - start_s) * 1e3


def time_paths(paths: dict[str, Callable[[], Any]], timing: TimingOptions) -> dict[str, Timing]:
    """Warm every path up, then time them round-robin, ``repeats`` rounds: a change in machine load during the
    run slows every path alike instead of skewing their ratio. Peak memory is the largest over the timed calls."""
    device = torch.device(timing.device)
    samples: dict[str, list[float]] = {name: [] for name in paths}
    peaks: dict[str, list[float]] = {name: [] for name in paths}
    with torch.inference_mode():
        for fn in paths.values():
            for _ in range(timing.warmup):
                fn()
        for _ in range(timing.repeats):
            for name, fn in paths.items():
                in_use = _reset_peak(device)
                samples[name].append(_elapsed_ms(fn, device))
                if in_use is not None:
                    peaks[name].append(_peak(device) - in_use)
    return {
        name: Timing.from_samples(samples[name], round(max(peaks[name]), 1) if peaks[name] else None)
        for name in paths
    }


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Set torch's intra-op threads for the block (restored after); yields the count in effect."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# ---- the three paths ----------------------------------------------------------------------------------------------
def full_forward(model: torch.nn.Module, batch: BenchBatch) -> Any:
    """The original model on the joint sequence: a `DecoupledModel` gets the four tensors, an HF model the
    concatenated ids with token type 0 on the question and 1 on the passage."""
    from trainables.model.decoupled import DecoupledModel

    if isinstance(model, DecoupledModel):
        return model(batch.question_ids, batch.question_mask, batch.passage_ids, batch.passage_mask)
    inputs = {
        "input_ids": torch.cat([batch.question_ids, batch.passage_ids], dim=1),
        "attention_mask": torch.cat([batch.question_mask, batch.passage_mask], dim=1),
    }
    if getattr(model.config, "type_vocab_size", 1) > 1:  # RoBERTa-style models have a single token type
        types = [torch.zeros_like(batch.question_ids), torch.ones_like(batch.passage_ids)]
        inputs["token_type_ids"] = torch.cat(types, dim=1)
    return model(**inputs)


def host_cache(model: torch.nn.Module, batch: BenchBatch, device: str):
    """Passage states of ``batch`` as a cache holds them: made once on ``device``, kept in host memory
    (pinned when ``device`` is cuda so the timed copy is a plain DMA). Returns (PassageStates, passage mask)."""
    from trainables.model.decoupled import PassageStates

    with torch.inference_mode():
        states = model.encode_passage(batch.passage_ids, batch.passage_mask).to("cpu")
    mask = batch.passage_mask.cpu()
    if device != "cuda":
        return states, mask
    scale = None if states.scale is None else states.scale.pin_memory()
    return PassageStates(states.values.pin_memory(), scale), mask.pin_memory()


def measure_speedup(
    model_full: torch.nn.Module,
    model_student: torch.nn.Module,
    batch: BenchBatch,
    timing: TimingOptions = TimingOptions(),
) -> dict[str, Any]:
    """Time a full model (HF task model or `DecoupledModel`, see `full_forward`) against a `DecoupledModel`
    student's live and cached paths on the same ``batch`` (host tensors, moved to ``timing.device`` here; the
    models must already be there). Thread count is the caller's (`torch.set_num_threads`).

    Returns split; full, live and cached `Timing` dicts; speedup_{live,cached} (full median / path median);
    bound_{live,cached} (`flops.speedup_bound` of the student's shape, split and ratio); {live,cached}_vs_bound
    (speedup / bound); state_bytes_per_token (values + scale bytes / passage tokens); speed_load (the highest
    1-minute load average before and after the timing) and speed_reliable (1.0, or 0.0 when a speedup is above its
    bound or the load above the cores: `trainables.speed.reliability`).
    """
    model, batch = model_student.eval(), batch.to(timing.device)
    model_full.eval()
    states, passage_mask = host_cache(model, batch, timing.device)

    def full() -> Any:
        return full_forward(model_full, batch)

    def live() -> Any:
        return model(batch.question_ids, batch.question_mask, batch.passage_ids, batch.passage_mask)

    def cached() -> Any:
        on_device = states.to(timing.device, non_blocking=True)
        mask = passage_mask.to(timing.device, non_blocking=True)
        question = model.encode_question(batch.question_ids, batch.question_mask)
        return model.forward_upper(question, batch.question_mask, on_device, mask)

    load_before = load_average()
    timings = time_paths({"full": full, "live": live, "cached": cached}, timing)
    loads = [x for x in (load_before, load_average()) if x is not None]
    shape, split = ModelShape.from_hf_config(model.hf_config), model.config.split
    q_len, p_len = batch.question_ids.shape[1], batch.passage_ids.shape[1]
    row: dict[str, Any] = {"split": split, "full": asdict(timings.pop("full"))}
    for name, path in timings.items():
        speedup = row["full"]["median_ms"] / path.median_ms
        bound = speedup_bound(shape, split, q_len, p_len, model.config.compression_ratio, cached=name == "cached")
        row[name] = asdict(path)
        row |= {f"speedup_{name}": speedup, f"bound_{name}": bound, f"{name}_vs_bound": speedup / bound}
    row["state_bytes_per_token"] = states.nbytes() / passage_mask.numel()
    row["speed_load"] = max(loads) if loads else None
    reasons = unreliable_reasons({name: (row[f"speedup_{name}"], row[f"bound_{name}"]) for name in timings},
                                 row["speed_load"], cores())
    row["speed_reliable"] = 0.0 if reasons else 1.0
    return row
