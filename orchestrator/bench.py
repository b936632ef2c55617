"""`decouple bench`: measured speedup of decoupled models against the analytic FLOPs bound, for each split of a
model (a checkpoint's weights, or random ones of a shape preset), as a table, JSON or an MLflow run. The timing
itself (`measure_speedup`, which sweep trials call too) is `trainables.speed.timing`.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from orchestrator.errors import UserError
from orchestrator.text_table import aligned
from trainables.model.config import CACHE_DTYPES, DecoupledConfig, check_fits, check_split_in
from trainables.model.source import resolve_model
from trainables.speed.flops import SHAPE_PRESETS, ModelShape
from trainables.speed.reliability import UNRELIABLE_MARK, cores, is_reliable
from trainables.speed.timing import DEVICES, BenchBatch, TimingOptions, measure_speedup, memory_method, torch_threads

DEFAULT_EXPERIMENT = "bench"
SHAPE_MAX_POSITIONS = 512  # BERT's position table, for models built from a shape preset


@dataclass(frozen=True)
class BenchOptions:
    """What `run_bench` measures and how."""

    model: str | None = None
    """A checkpoint to load real weights from: a directory, 'minilm-l6', or a hub name (org/name[@revision]) from the
    Hugging Face cache."""
    shape: str = field(default="bert-base", metadata={"choices": tuple(SHAPE_PRESETS)})
    """Preset of `trainables.speed.flops.SHAPE_PRESETS` with random weights (speed does not depend on values);
    unused with `model`."""
    splits: tuple[int, ...] | None = None
    """Splits k to time (on the command line comma-separated, e.g. 0,6,9,11); None = every third layer from 0 plus
    L-1 (0, 3, 6, 9, 11 for 12 layers), or an any-split `model`'s splits (and 0). An any-split model times only the
    splits it was trained at (and 0, the full model)."""
    compression_ratio: int = 1
    """Compression ratio r of the passage states (1 = no compression)."""
    cache_dtype: str = field(default="fp32", metadata={"choices": CACHE_DTYPES})
    """How cached passage states are stored: fp32, fp16 or int8."""
    batch_size: int = 8
    """Rows per forward pass."""
    max_question_len: int = 32
    """Q: tokens of the question segment (as `decouple train --max-question-len`; the timed batch has no padding)."""
    max_passage_len: int = 320
    """P: tokens of the passage segment (as `decouple train --max-passage-len`)."""
    device: str = field(default=TimingOptions.device, metadata={"choices": DEVICES})
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
        self._check_at_least(compression_ratio=1, batch_size=1, max_question_len=3, max_passage_len=1)
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads={self.threads} must be >= 1 (or unset for torch's current setting)")
        if self.model is None:
            self.check_against(ModelShape.preset(self.shape), SHAPE_MAX_POSITIONS)

    def _check_at_least(self, **minimums: int) -> None:
        for name, low in minimums.items():
            if getattr(self, name) < low:
                raise ValueError(f"{name}={getattr(self, name)} must be >= {low}")

    def check_against(self, shape: ModelShape, max_positions: int) -> None:
        """Raise if the splits, ratio or lengths do not fit a model of ``shape``."""
        if self.splits is not None and max(self.splits) > shape.layers:
            raise ValueError(f"splits={self.splits} go past the model's {shape.layers} layers; use 0..{shape.layers}")
        check_fits(0, self.compression_ratio, shape.layers, shape.hidden)
        if self.max_question_len + self.max_passage_len > max_positions:
            raise ValueError(
                f"max_question_len + max_passage_len = {self.max_question_len + self.max_passage_len} exceeds the "
                f"model's {max_positions} positions; shorten max_passage_len"
            )

    @property
    def timing(self) -> TimingOptions:
        return TimingOptions(self.device, self.repeats, self.warmup)

    def splits_for(self, shape: ModelShape, trained: tuple[int, ...] = ()) -> tuple[int, ...]:
        """The splits to time on a model of ``shape``; ``trained``: an any-split model's splits, which the asked
        splits must be among (`check_split_in`: one line, ValueError)."""
        if self.splits is None:
            return (0, *trained) if trained else tuple(sorted(set(range(0, shape.layers, 3)) | {shape.layers - 1}))
        for split in self.splits:
            if trained and split:
                check_split_in(split, trained)
        return self.splits


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


# ---- one run: build, time, report ---------------------------------------------------------------------------------
def _hf_config(options: BenchOptions):
    from transformers import AutoConfig, BertConfig

    if options.model is None:
        s = ModelShape.preset(options.shape)
        return BertConfig(
            vocab_size=s.vocab, hidden_size=s.hidden, num_hidden_layers=s.layers, num_attention_heads=s.heads,
            intermediate_size=s.intermediate, max_position_embeddings=SHAPE_MAX_POSITIONS,
        )

    try:
        return AutoConfig.from_pretrained(resolve_model(options.model), local_files_only=True)
    except OSError as err:
        raise UserError(f"model={options.model!r}: no local checkpoint with a config.json ({err})") from None


def _build_model(options: BenchOptions, hf_config, split: int):
    """The decoupled model at ``split``; random weights from ``options.seed`` for a shape, else the checkpoint's."""
    from trainables.model.decoupled import DecoupledModel

    config = DecoupledConfig(
        split=split, compression_ratio=options.compression_ratio, cache_dtype=options.cache_dtype,
        max_question_len=options.max_question_len,
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
    try:
        splits = options.splits_for(shape, tuple((getattr(hf_config, "decoupled", None) or {}).get("splits", ())))
    except ValueError as err:
        raise UserError(f"model={options.model!r}: {err}") from None
    batch = BenchBatch.random(shape.vocab, options.batch_size, options.max_question_len, options.max_passage_len,
                               options.seed)
    load_start = os.getloadavg()[0]
    with torch_threads(options.threads) as threads:
        full_model = _build_model(options, hf_config, split=0).hf
        rows = [
            measure_speedup(full_model, _build_model(options, hf_config, split), batch, options.timing)
            for split in splits
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


def load_line(load: tuple[float, float], cpus: int) -> str:
    """The header line on the machine's load: what it was, and whether other processes competed for the cores
    (the load average counts the bench's own threads, so only a load above the cores says they did)."""
    verdict = ("above the cores: other processes competed for them and the times are inflated"
               if max(load) > cpus else "at most the cores: nothing else competed for them")
    return f"load average {load[0]:.1f} at start, {load[1]:.1f} at end, on {cpus} CPUs ({verdict})"


def format_table(result: BenchResult) -> str:
    """The human-readable report: a header of the conditions, then one line per split."""
    o, s = result.options, result.shape
    header = [
        f"model: {o.model or o.shape + ' (random weights)'}: "
        f"L={s.layers} d={s.hidden} heads={s.heads} ff={s.intermediate}",
        f"batch {o.batch_size}, question {o.max_question_len}, passage {o.max_passage_len} tokens (no padding); "
        f"ratio {o.compression_ratio}, cache {o.cache_dtype}",
        f"device {o.device}, {result.threads} threads, torch {torch.__version__}; "
        f"{o.repeats} round-robin repeats after {o.warmup} warm-up, medians [inter-quartile range]",
        load_line(result.load_average, cores()),
        f"full = {result.baseline} on [question ; passage], timed beside each split",
        f"peak memory (MiB): {result.memory_method}",
        "x = measured speedup over full; bound = FLOPs(full) / FLOPs(path); meas/bnd = x / bound; "
        "state B/token = state_bytes_per_token (a cached passage token's values + int8 scales)",
        *([UNRELIABLE_NOTE] if not all(is_reliable(row) for row in result.rows) else []),
        "",
    ]
    return "\n".join(header + aligned([list(_TITLES)] + [_cells(row) for row in result.rows]))


def log_to_mlflow(result: BenchResult, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Log one run to MLflow: options and environment as params, each split's numbers as metrics with
    step=split, the JSON report as the artifact ``bench.json``. Returns the run id."""
    from orchestrator.tracking import Tracking, end_run, log_metrics, log_params, log_text, start_run

    tracking = Tracking(tracking_uri, experiment, run_name="bench")
    run_id = start_run(tracking)
    environment = {"threads": result.threads, "baseline": result.baseline, "torch": torch.__version__}
    log_params(tracking.uri, run_id, {**asdict(result.options), **environment})
    for row in result.rows:
        log_metrics(tracking.uri, run_id, _flat_metrics(row), step=row["split"])
    log_text(tracking.uri, run_id, json.dumps(result.to_dict(), indent=2), "bench.json")
    end_run(tracking.uri, run_id)
    return run_id


def _flat_metrics(row: dict[str, Any]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat |= {f"{key}_{k}": v for k, v in value.items() if v is not None}
        elif key != "split" and value is not None:  # speed_load is None where there is no load average
            flat[key] = value
    return flat
