"""`decouple bench`: measured speedup of decoupled models against the analytic FLOPs bound.

Three paths are timed on the same random batch (all masks 1, so every path does the work `flops.py` counts):

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

import argparse
import contextlib
import copy
import ctypes
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from orchestrator.errors import UserError
from orchestrator.flops import SHAPE_PRESETS, ModelShape, speedup_bound
from orchestrator.speed_reliability import UNRELIABLE_MARK, cores, is_reliable, load_average, unreliable_reasons
from trainables.decoupled_config import CACHE_DTYPES
from trainables.devices import check_device

DEVICES = ("cpu", "cuda")
DEFAULT_EXPERIMENT = "bench"
SHAPE_MAX_POSITIONS = 512  # BERT's position table, for models built from a shape preset
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
class BenchOptions:
    """What `run_bench` measures and how."""

    model: str | None = None
    """A checkpoint to load real weights from: a directory, 'minilm-l6', or a hub name (org/name[@revision]) from the
    Hugging Face cache."""
    shape: str = "bert-base"
    """Preset of `flops.SHAPE_PRESETS` with random weights (speed does not depend on values); unused with `model`."""
    splits: tuple[int, ...] | None = None
    """Splits k to time; None = every third layer from 0 plus L-1 (0, 3, 6, 9, 11 for 12 layers)."""
    ratio: int = 1
    """Compression ratio r of the passage states (1 = no compression)."""
    cache_dtype: str = "fp32"
    """How cached passage states are stored: fp32, fp16 or int8."""
    batch_size: int = 8
    """Rows per forward pass."""
    question_len: int = 32
    """Q: tokens of the question segment."""
    passage_len: int = 320
    """P: tokens of the passage segment."""
    device: str = TimingOptions.device
    """See `TimingOptions.device`."""
    repeats: int = TimingOptions.repeats
    """See `TimingOptions.repeats`."""
    warmup: int = TimingOptions.warmup
    """See `TimingOptions.warmup`."""
    threads: int | None = None
    """torch intra-op threads during the run; None = torch's current setting."""
    seed: int = 0
    """Seed of the random weights and inputs."""

    def __post_init__(self) -> None:
        if self.model is None and self.shape not in SHAPE_PRESETS:
            raise ValueError(f"shape={self.shape!r} is unknown; use one of {', '.join(SHAPE_PRESETS)}")
        if self.splits is not None and (not self.splits or min(self.splits) < 0):
            raise ValueError(f"splits={self.splits} must be a non-empty list of layer counts >= 0, e.g. 0,6,9")
        if self.cache_dtype not in CACHE_DTYPES:
            raise ValueError(f"cache_dtype={self.cache_dtype!r} is unknown; use one of {', '.join(CACHE_DTYPES)}")
        TimingOptions(self.device, self.repeats, self.warmup)  # raises on a bad device, repeats or warmup
        self._check_at_least(ratio=1, batch_size=1, question_len=3, passage_len=1)
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads={self.threads} must be >= 1 (or unset for torch's current setting)")
        if self.model is None:
            self.check_against(SHAPE_PRESETS[self.shape], SHAPE_MAX_POSITIONS)

    def _check_at_least(self, **minimums: int) -> None:
        for name, low in minimums.items():
            if getattr(self, name) < low:
                raise ValueError(f"{name}={getattr(self, name)} must be >= {low}")

    def check_against(self, shape: ModelShape, max_positions: int) -> None:
        """Raise if the splits, ratio or lengths do not fit a model of ``shape``."""
        if self.splits is not None and max(self.splits) > shape.layers:
            raise ValueError(f"splits={self.splits} go past the model's {shape.layers} layers; use 0..{shape.layers}")
        if shape.hidden % self.ratio:
            raise ValueError(f"ratio={self.ratio} does not divide the hidden size {shape.hidden}; use a divisor")
        if self.question_len + self.passage_len > max_positions:
            raise ValueError(
                f"question_len + passage_len = {self.question_len + self.passage_len} exceeds the model's "
                f"{max_positions} positions; shorten passage_len"
            )

    @property
    def timing(self) -> TimingOptions:
        return TimingOptions(self.device, self.repeats, self.warmup)

    def splits_for(self, shape: ModelShape) -> tuple[int, ...]:
        """The splits to time on a model of ``shape``."""
        if self.splits is not None:
            return self.splits
        return tuple(sorted(set(range(0, shape.layers, 3)) | {shape.layers - 1}))


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


@dataclass
class BenchResult:
    """One `run_bench` run: the conditions and one `measure_speedup` row per split."""

    options: BenchOptions
    shape: ModelShape
    threads: int
    baseline: str
    """The full model, in words."""
    memory_method: str
    load_average: tuple[float, float]
    """The machine's 1-minute load average at the start and at the end: above the thread count, other processes
    competed for the cores and the times are inflated, most for paths made of many small operations."""
    rows: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "options": asdict(self.options),
            "shape": asdict(self.shape),
            "device": self.options.device,
            "threads": self.threads,
            "torch": torch.__version__,
            "baseline": self.baseline,
            "memory_method": self.memory_method,
            "cpu_count": os.cpu_count(),
            "load_average": list(self.load_average),
            "rows": self.rows,
        }


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
def _torch_threads(threads: int | None) -> Iterator[int]:
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
    from trainables.decoupled import DecoupledModel

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
    from trainables.decoupled import PassageStates

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
    bound or the load above the cores: `speed_reliability`).
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


# ---- one run: build, time, report ---------------------------------------------------------------------------------
def _hf_config(options: BenchOptions):
    from transformers import AutoConfig, BertConfig

    if options.model is None:
        s = SHAPE_PRESETS[options.shape]
        return BertConfig(
            vocab_size=s.vocab, hidden_size=s.hidden, num_hidden_layers=s.layers, num_attention_heads=s.heads,
            intermediate_size=s.intermediate, max_position_embeddings=SHAPE_MAX_POSITIONS,
        )
    from trainables.model_source import resolve_model

    try:
        return AutoConfig.from_pretrained(resolve_model(options.model), local_files_only=True)
    except OSError as err:
        raise UserError(f"model={options.model!r}: no local checkpoint with a config.json ({err})") from None


def _build_model(options: BenchOptions, hf_config, split: int):
    """The decoupled model at ``split``; random weights from ``options.seed`` for a shape, else the checkpoint's."""
    from trainables.decoupled import DecoupledModel
    from trainables.decoupled_config import DecoupledConfig

    config = DecoupledConfig(
        split=split, compression_ratio=options.ratio, cache_dtype=options.cache_dtype,
        max_question_len=options.question_len,
    )
    if options.model is not None:
        model = DecoupledModel.from_hf(options.model, config)
    else:
        torch.manual_seed(options.seed)
        model = DecoupledModel.from_hf_config(copy.deepcopy(hf_config), config)
    return model.to(options.device).eval()


def run_bench(options: BenchOptions) -> BenchResult:
    """For each split, time the full model and the split's live and cached paths on one random batch."""
    hf_config = _hf_config(options)
    shape = ModelShape.from_hf_config(hf_config)
    options.check_against(shape, hf_config.max_position_embeddings)
    batch = BenchBatch.random(shape.vocab, options.batch_size, options.question_len, options.passage_len, options.seed)
    load_start = os.getloadavg()[0]
    with _torch_threads(options.threads) as threads:
        full_model = _build_model(options, hf_config, split=0).hf
        rows = [
            measure_speedup(full_model, _build_model(options, hf_config, split), batch, options.timing)
            for split in options.splits_for(shape)
        ]
    baseline = f"{type(full_model).__name__} (attention: {full_model.config._attn_implementation})"
    load = (load_start, os.getloadavg()[0])
    return BenchResult(options, shape, threads, baseline, memory_method(options.device), load, rows)


# ---- reporting ----------------------------------------------------------------------------------------------------
UNRELIABLE_NOTE = ("x? = speed not reliable (speed_reliable 0): a speedup above its FLOPs bound, or a load average "
                   "above the cores while timing; time it again on a quiet machine")
_TITLES = ("split", "full ms [IQR]", "live ms [IQR]", "cached ms [IQR]", "x live", "bound", "meas/bnd", "x cached",
           "bound", "meas/bnd", "state B/token", "peak MiB full", "live", "cached")


def _cells(row: dict[str, Any]) -> list[str]:
    """One table line's cells, in `_TITLES` order."""
    def ms(name: str) -> str:
        t = row[name]
        return f"{t['median_ms']:.1f} [{t['q3_ms'] - t['q1_ms']:.1f}]"

    def mem(name: str) -> str:
        return "n/a" if row[name]["peak_mem_mib"] is None else f"{row[name]['peak_mem_mib']:.0f}"

    numbers = [row[k] for k in ("speedup_live", "bound_live", "live_vs_bound", "speedup_cached", "bound_cached",
                                "cached_vs_bound")]
    cells = [f"{x:.2f}" for x in numbers]
    if not is_reliable(row):  # the measured speedups, x live and x cached
        cells[0], cells[3] = cells[0] + UNRELIABLE_MARK, cells[3] + UNRELIABLE_MARK
    return [str(row["split"]), ms("full"), ms("live"), ms("cached"), *cells,
            f"{row['state_bytes_per_token']:.1f}", mem("full"), mem("live"), mem("cached")]


def format_table(result: BenchResult) -> str:
    """The human-readable report: a header of the conditions, then one line per split."""
    o, s = result.options, result.shape
    header = [
        f"model: {o.model or o.shape + ' (random weights)'}: "
        f"L={s.layers} d={s.hidden} heads={s.heads} ff={s.intermediate}",
        f"batch {o.batch_size}, question {o.question_len}, passage {o.passage_len} tokens (no padding); "
        f"ratio {o.ratio}, cache {o.cache_dtype}",
        f"device {o.device}, {result.threads} threads, torch {torch.__version__}; "
        f"{o.repeats} round-robin repeats after {o.warmup} warm-up, medians [inter-quartile range]",
        f"load average {result.load_average[0]:.1f} at start, {result.load_average[1]:.1f} at end, "
        f"on {os.cpu_count()} CPUs (above the thread count, other processes competed for the cores)",
        f"full = {result.baseline} on [question ; passage], timed beside each split",
        f"peak memory (MiB): {result.memory_method}",
        "x = measured speedup over full; bound = FLOPs(full) / FLOPs(path); meas/bnd = x / bound; "
        "state B/token = state_bytes_per_token (a cached passage token's values + int8 scales)",
        *([UNRELIABLE_NOTE] if not all(is_reliable(row) for row in result.rows) else []),
        "",
    ]
    lines = [list(_TITLES)] + [_cells(row) for row in result.rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_TITLES))]
    return "\n".join(header + ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines])


def log_to_mlflow(result: BenchResult, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Log one run to MLflow: options and environment as params, each split's numbers as metrics with
    step=split, the JSON report as the artifact ``bench.json``. Returns the run id."""
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking import Tracking, experiment_id as find_experiment

    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = client.create_run(find_experiment(Tracking(tracking_uri, experiment)), run_name="bench").info.run_id
    environment = {"threads": result.threads, "baseline": result.baseline, "torch": torch.__version__}
    params = {**asdict(result.options), **environment}
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for row in result.rows:
        for key, value in _flat_metrics(row).items():
            client.log_metric(run_id, key, value, step=row["split"])
    client.log_text(run_id, json.dumps(result.to_dict(), indent=2), "bench.json")
    client.set_terminated(run_id)
    return run_id


def _flat_metrics(row: dict[str, Any]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat |= {f"{key}_{k}": v for k, v in value.items() if v is not None}
        elif key != "split" and value is not None:  # speed_load is None where there is no load average
            flat[key] = value
    return flat


# ---- CLI ----------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = BenchOptions
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="checkpoint directory, hub name (org/name[@revision]) or 'minilm-l6' to time "
                                        "with its real weights")
    source.add_argument("--shape", choices=list(SHAPE_PRESETS), default=d.shape, help="preset with random weights")
    parser.add_argument("--splits", help="comma-separated splits, e.g. 0,6,9,11 (default: every 3rd layer and L-1)")
    parser.add_argument("--ratio", type=int, default=d.ratio, help="compression ratio r (1 = none)")
    parser.add_argument("--cache-dtype", choices=CACHE_DTYPES, default=d.cache_dtype)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--question-len", type=int, default=d.question_len)
    parser.add_argument("--passage-len", type=int, default=d.passage_len)
    parser.add_argument("--device", choices=DEVICES, default=d.device)
    parser.add_argument("--repeats", type=int, default=d.repeats, help="timed rounds of full, live and cached")
    parser.add_argument("--warmup", type=int, default=d.warmup, help="untimed calls per path before timing")
    parser.add_argument("--threads", type=int, default=d.threads, help="torch threads (default: torch's current)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    parser.add_argument("--tracking-uri", help="also log to this MLflow tracking URI")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")


def _parse_splits(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--splits {text!r}: expected comma-separated integers, e.g. 0,6,9,11") from None


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(
        model=args.model, shape=args.shape, splits=_parse_splits(args.splits), ratio=args.ratio,
        cache_dtype=args.cache_dtype, batch_size=args.batch_size, question_len=args.question_len,
        passage_len=args.passage_len, device=args.device, repeats=args.repeats, warmup=args.warmup,
        threads=args.threads, seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    result = run_bench(options_from_args(args))
    print(format_table(result), flush=True)
    if args.tracking_uri:
        print(f"logged to MLflow run {log_to_mlflow(result, args.tracking_uri, args.experiment)}")
    if args.json:
        print(json.dumps(result.to_dict()))
    return 0
