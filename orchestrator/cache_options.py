"""What one `decouple cache build` is: `CacheBuildOptions`, apart from the build (`orchestrator.cache_build`) so
that the command's flags are made from it without importing Ray, torch or transformers."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.model_settings import read_trained_settings
from trainables import storage
from trainables.model.config import CACHE_DTYPES, DecoupledConfig
from trainables.model.source import resolve_model
from trainables.options import check_finite


@dataclass(frozen=True)
class CacheBuildOptions:
    """One `decouple cache build`."""

    model: str
    """A decoupled checkpoint directory (``save_pretrained`` output), an HF checkpoint directory, a hub name
    (org/name[@revision], from the Hugging Face cache), or 'minilm-l6'."""
    data: str
    """Passages: a SQuAD-format .json / 'synthetic[:...]' / hub name (its contexts), or a .jsonl / .parquet corpus of
    ``{id, text}`` records (passage id = the record's id)."""
    out: str
    """Cache directory; created if missing; a rerun with the same arguments resumes it."""
    rows_per_shard: int = 256
    """Windows per Parquet shard (the last shard may hold fewer)."""
    batch_size: int = 32
    """Windows per `encode_passage` call inside an actor."""
    workers: int = 1
    """Actors in the Ray Data pool, each holding one copy of the model."""
    gpus_per_worker: float | None = None
    """GPUs per actor; None = 1 when the Ray cluster has GPUs, else 0 (CPU)."""
    cpus_per_worker: int | None = None
    """CPUs reserved per actor, also its torch thread count; None = the cluster's CPUs divided among the workers."""
    max_passage_len: int | None = None
    """P: tokens per window (window then [SEP], padded); must equal what evaluation uses. None = the model's training
    setting (`orchestrator.model_settings`), else `features.MAX_PASSAGE_LEN`."""
    doc_stride: int | None = None
    """Overlap in tokens between consecutive windows; must equal what evaluation uses. None = the model's training
    setting, else `features.DOC_STRIDE`."""
    split: int | None = None
    """Override the checkpoint's split k; None keeps it."""
    compression_ratio: int | None = None
    """Override the checkpoint's compression ratio r; None keeps it."""
    cache_dtype: str | None = field(default=None, metadata={"choices": CACHE_DTYPES})
    """Override the checkpoint's cache dtype (fp32 | fp16 | int8); None keeps it."""
    ray_address: str | None = None
    """Connect to this Ray cluster; None (and no ``RAY_ADDRESS``) starts a local Ray for the build, never joining one
    started elsewhere (`orchestrator.ray_session`)."""

    def __post_init__(self) -> None:
        for name in ("model", "data", "out"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty; pass --{name}")
        for name in ("rows_per_shard", "batch_size", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        check_finite(self)
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker={self.gpus_per_worker} must be >= 0 (0 = CPU)")
        if self.cpus_per_worker is not None and self.cpus_per_worker < 1:
            raise ValueError(f"cpus_per_worker={self.cpus_per_worker} must be >= 1")
        if self.max_passage_len is not None and self.max_passage_len < 2:
            raise ValueError(f"max_passage_len={self.max_passage_len} must be >= 2 (one token and [SEP])")
        if self.doc_stride is not None and self.doc_stride < 0:
            raise ValueError(f"doc_stride={self.doc_stride} is the overlap between windows; use 0 or more")
        if None not in (self.max_passage_len, self.doc_stride) and self.doc_stride >= self.max_passage_len - 1:
            raise ValueError(f"doc_stride={self.doc_stride} is the overlap between windows; use 0 to "
                             f"{self.max_passage_len - 2}")
        if self.cache_dtype is not None and self.cache_dtype not in CACHE_DTYPES:
            raise ValueError(f"cache_dtype={self.cache_dtype!r} is unknown; use one of {', '.join(CACHE_DTYPES)}")
        if not _holds_finished_cache(self.out):  # a finished cache's rerun may write nothing (`build_cache` decides)
            storage.check_directory_target(self.out, "out")

    def settled(self) -> tuple["CacheBuildOptions", str | None]:
        """These options with the windows left unset taken from the model's training settings, else the defaults;
        and the line saying what was taken from the model (None when nothing was)."""
        from trainables.data.features import DOC_STRIDE, MAX_PASSAGE_LEN

        trained = read_trained_settings(resolve_model(self.model))
        taken, line = trained.take({"task": "qa", "max_passage_len": self.max_passage_len,
                                    "doc_stride": self.doc_stride}, "qa")
        defaults = {"max_passage_len": MAX_PASSAGE_LEN, "doc_stride": DOC_STRIDE}
        return replace(self, **{k: taken.get(k, v) for k, v in defaults.items() if getattr(self, k) is None}), line

    def model_overrides(self) -> dict:
        """DecoupledConfig fields to replace when loading the checkpoint."""
        return {k: getattr(self, k) for k in DecoupledConfig.CACHE_SETTINGS if getattr(self, k) is not None}


def _holds_finished_cache(out: str) -> bool:
    """Whether the directory ``out`` holds a cache whose manifest says it is complete."""
    if storage.is_uri(out) or not Path(out).expanduser().is_dir():
        return False
    from trainables.cache.format import CacheError, read_manifest  # torch and pyarrow: only for an existing directory

    try:
        return read_manifest(Path(out).expanduser()).complete
    except CacheError:
        return False
