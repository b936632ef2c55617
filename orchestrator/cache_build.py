"""Build a passage cache: window the passages, encode them with Ray Data, write sharded Parquet (`cache_format`).

Design. The driver loads the model once (for its identity and tokenizer), reads the passages and windows them with
exactly the call evaluation uses (``trainables.qa_features.passage_windows`` with the same ``max_passage_len`` and
``doc_stride``), so ``(passage_id, window)`` keys match the evaluation features. The windows, in a deterministic
order (passages in first-appearance order, then window number), are the *plan*; shard ``i`` holds plan rows
``[i*N, (i+1)*N)``.

Before encoding, the driver writes (or re-reads) ``manifest.json``. A shard already listed there whose file has the
recorded sha256 is kept; every other shard is *missing*. Only the missing shards' windows go through Ray Data:
``from_items`` -> ``map_batches(PassageEncoder)`` on an ``ActorPoolStrategy`` pool, where each actor loads the model
once and runs ``encode_passage`` (lower layers -> compression -> quantization) on batches of windows, on a GPU when
the actor has one. The driver consumes the encoded batches with ``iter_batches`` in whatever order they finish,
groups rows by shard and, as soon as a shard has all its rows, writes it (temporary name, then rename) and records
it in the manifest (also rewritten atomically). A crash therefore loses at most the shards in flight, and a rerun
with the same arguments encodes only those. Buffered rows are bounded by the shards in flight, since input blocks
are cut along shard boundaries and Ray Data streams them roughly in order.

A checkpoint that loads with random weights (a missing QA head or compressor) would give every actor different
states, so the driver loads it twice and refuses it when the two identities differ; each actor also re-checks its
own copy against the driver's identity (a node that sees another file fails instead of caching foreign states).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import ray
import torch

from trainables.cache_format import (
    MANIFEST,
    CacheError,
    Manifest,
    ShardData,
    ShardEntry,
    check_shard_file,
    model_identity,
    read_manifest,
    shard_index,
    remove_stale_temporaries,
    schema_columns,
    shard_schema,
    tokenizer_sha256,
    with_shard,
    write_manifest,
    write_shard,
)
from orchestrator.console import quiet_ray_data, worker_env
from orchestrator.progress import Progress
from orchestrator.ray_session import ray_session
from trainables import storage
from trainables.data_errors import DataError, LoadReport, problem_line
from trainables.decoupled import DecoupledModel
from trainables.decoupled_config import CACHE_DTYPES
from trainables.features import DOC_STRIDE, MAX_PASSAGE_LEN, PassageWindow, check_joint_length
from trainables.model_source import resolve_model
from trainables.qa_features import passage_windows
from trainables.quantization import state_bytes_per_token
from trainables.squad import load_squad

_RANDOM_WEIGHTS = ("model {model}: loading it twice gives different weights (a head or compressor is initialised "
                   "at random); save the decoupled model with save_pretrained and cache that")


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
    cache_dtype: str | None = None
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
        storage.check_directory_target(self.out, "out")

    def settled(self) -> tuple["CacheBuildOptions", str | None]:
        """These options with the windows left unset taken from the model's training settings, else the defaults;
        and the line saying what was taken from the model (None when nothing was)."""
        from orchestrator.model_settings import read_trained_settings

        trained = read_trained_settings(resolve_model(self.model))
        taken, line = trained.take({"task": "qa", "max_passage_len": self.max_passage_len,
                                    "doc_stride": self.doc_stride}, "qa")
        defaults = {"max_passage_len": MAX_PASSAGE_LEN, "doc_stride": DOC_STRIDE}
        return replace(self, **{k: taken.get(k, v) for k, v in defaults.items() if getattr(self, k) is None}), line

    def model_overrides(self) -> dict:
        """DecoupledConfig fields to replace when loading the checkpoint."""
        fields = ("split", "compression_ratio", "cache_dtype")
        return {k: getattr(self, k) for k in fields if getattr(self, k) is not None}


@dataclass
class BuildSummary:
    """What a build did; ``windows_per_second`` covers the Ray Data pipeline (actor start-up and writes included)."""

    out: str
    passages: int
    windows: int
    shards: int
    shards_written: int
    shards_kept: int
    encode_seconds: float
    windows_encoded: int
    bytes: int
    """Size of the cache's Parquet shards."""
    valid_tokens: int
    """Passage tokens in the cache (padding positions not counted)."""
    state_bytes_per_token: float
    """Bytes of one passage token's cached state (`trainables.quantization.state_bytes_per_token`): the figure a sweep
    reports for the same split, ratio and dtype."""
    load_report: LoadReport
    passages_encoded: int = 0

    @property
    def windows_per_second(self) -> float:
        return self.windows_encoded / self.encode_seconds if self.encode_seconds else 0.0

    @property
    def passages_per_second(self) -> float:
        return self.passages_encoded / self.encode_seconds if self.encode_seconds else 0.0

    def to_dict(self) -> dict:
        return {
            "out": self.out, "passages": self.passages, "windows": self.windows, "shards": self.shards,
            "shards_written": self.shards_written, "shards_kept": self.shards_kept,
            "encode_seconds": self.encode_seconds, "windows_per_second": self.windows_per_second,
            "passages_per_second": self.passages_per_second, "bytes": self.bytes,
            "valid_tokens": self.valid_tokens,
            "state_bytes_per_token": self.state_bytes_per_token,
            "disk_bytes_per_token": self.disk_bytes_per_token,
            "data": self.load_report.summary(),
        }

    @property
    def disk_bytes_per_token(self) -> float:
        """The shards' bytes per passage token: the states of every window position (padding too), token ids,
        offsets and text, as Parquet stores them."""
        return self.bytes / self.valid_tokens if self.valid_tokens else 0.0


# ---- passages and the plan ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Passage:
    """One passage to cache."""

    id: str
    """``passage_id_for(context)`` for SQuAD contexts; the record's ``id`` for a corpus."""
    text: str


def load_passages(data: str) -> tuple[list[Passage], LoadReport]:
    """Distinct passages of ``data`` in first-appearance order, and the report of kept/skipped records."""
    suffix = Path(data).suffix.lower()
    if suffix == ".jsonl":
        return _corpus_passages(_jsonl_records(Path(data)), Path(data).name)
    if suffix == ".parquet":
        return _corpus_passages(_parquet_records(Path(data)), Path(data).name)
    examples, report = load_squad(data)
    passages = {ex.passage_id: Passage(ex.passage_id, ex.context) for ex in examples}
    return list(passages.values()), report


def _jsonl_records(path: Path) -> Iterator[tuple[str, object]]:
    """(where, record) per line; a malformed line becomes a record that fails the id check."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the --data path")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a byte-order mark is accepted
    except UnicodeDecodeError as err:
        raise DataError(f"{path.name}: not UTF-8 text ({err.reason} at byte {err.start}); "
                        "save the file as UTF-8") from None
    if not any(line.strip() for line in lines):
        raise DataError(f"{path.name}: the file is empty; write one {{\"id\": ..., \"text\": ...}} record per line")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as err:
            yield f"line {number}", f"malformed JSON ({err.msg} at column {err.colno})"
        except RecursionError:
            yield f"line {number}", "JSON nested too deeply to read"


def _parquet_records(path: Path) -> Iterator[tuple[str, object]]:
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the --data path")
    names = pq.ParquetFile(path).schema_arrow.names
    if "id" not in names or "text" not in names:
        raise DataError(f"{path.name}: columns {names} lack 'id' and/or 'text'; a corpus needs both")
    table = pq.read_table(path, columns=["id", "text"])
    for number, record in enumerate(table.to_pylist()):
        yield f"row {number}", record


def _corpus_passages(records: Iterator[tuple[str, object]], source: str) -> tuple[list[Passage], LoadReport]:
    report = LoadReport(source)
    passages: dict[str, Passage] = {}
    for where, record in records:
        if isinstance(record, str):
            report.skip(problem_line(source, where, "line", f"is {record}; fix the line"))
            continue
        raw_id = record.get("id") if isinstance(record, dict) else None
        pid = str(raw_id).strip() if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else ""
        text = record.get("text") if isinstance(record, dict) else None
        if not pid:
            report.skip(problem_line(source, where, "id", "is missing; give every record a unique id"))
        elif pid in passages:
            report.skip(problem_line(source, pid, "id", "repeats an earlier record; make ids unique"))
        elif not isinstance(text, str) or not text.strip():
            report.skip(problem_line(source, pid, "text", "is missing or empty; give the record its passage text"))
        else:
            passages[pid] = Passage(pid, text)
    report.kept = len(passages)
    return list(passages.values()), report


@dataclass
class Plan:
    """Every window to cache, in shard order; row ``i`` of each field describes plan row ``i``."""

    windows: list[PassageWindow]
    input_ids: np.ndarray
    """(n, P) int32, padded with the tokenizer's pad id."""
    lengths: np.ndarray
    """(n,) int32 valid tokens."""
    offsets: np.ndarray
    """(n, P, 2) int32, -1 for [SEP] and padding."""
    text_starts: np.ndarray
    """(n,) int32."""
    texts: list[str] = field(default_factory=list)
    passages: int = 0

    def __len__(self) -> int:
        return len(self.windows)

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for window, ids in zip(self.windows, self.input_ids):
            digest.update(f"{window.passage_id}\x00{window.window}\x00".encode())
            digest.update(ids.tobytes())
        return digest.hexdigest()

    def shard_data(self, rows: np.ndarray, states: np.ndarray, scales: np.ndarray | None) -> ShardData:
        return ShardData(
            passage_ids=[self.windows[r].passage_id for r in rows],
            windows=np.array([self.windows[r].window for r in rows]),
            lengths=self.lengths[rows], input_ids=self.input_ids[rows], offsets=self.offsets[rows],
            text_starts=self.text_starts[rows], texts=[self.texts[r] for r in rows],
            states=states, scales=scales,
        )


def plan_windows(passages: list[Passage], tokenizer, *, max_passage_len: int, doc_stride: int,
                 progress: Callable[[int], None] | None = None) -> Plan:
    """Window every passage exactly as evaluation does; passage ids come from ``passages``. ``progress`` is called
    with 1 after each passage."""
    windows, texts, text_starts = [], [], []
    for passage in passages:
        if progress is not None:
            progress(1)
        for window in passage_windows(passage.text, tokenizer, max_passage_len=max_passage_len, doc_stride=doc_stride):
            windows.append(replace(window, passage_id=passage.id))
            real = [o for o in window.offsets if o[0] >= 0]
            start, end = (real[0][0], max(e for _, e in real)) if real else (0, 0)
            text_starts.append(start)
            texts.append(passage.text[start:end])
    n, p = len(windows), max_passage_len
    input_ids = np.full((n, p), tokenizer.pad_token_id, dtype=np.int32)
    offsets = np.full((n, p, 2), -1, dtype=np.int32)
    lengths = np.zeros(n, dtype=np.int32)
    for i, window in enumerate(windows):
        lengths[i] = len(window.input_ids)
        input_ids[i, : lengths[i]] = window.input_ids
        offsets[i, : lengths[i]] = window.offsets
    return Plan(windows, input_ids, lengths, offsets, np.array(text_starts, dtype=np.int32), texts, len(passages))


# ---- the Ray Data encoder -------------------------------------------------------------------------------------------
class PassageEncoder:
    """Ray Data callable class: loads the model once per actor, then encodes batches of windows.

    Batch in: ``row`` (B,), ``input_ids`` (B, P), ``length`` (B,). Batch out: ``row`` (B,), ``states`` (B, P, C) in
    the cache dtype and, for int8, ``scale`` (B, C) fp32.
    """

    def __init__(self, model: str, overrides: dict, identity_sha256: str, threads: int) -> None:
        self.device = torch.device("cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu")
        if self.device.type == "cpu":
            torch.set_num_threads(threads)
        self.model = load_model(model, overrides)
        if model_identity(self.model)["sha256"] != identity_sha256:
            raise CacheError(_RANDOM_WEIGHTS.format(model=model))
        self.model.to(self.device).eval()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = torch.from_numpy(batch["input_ids"].astype(np.int64)).to(self.device)
        lengths = torch.from_numpy(batch["length"].astype(np.int64)).to(self.device)
        mask = (torch.arange(ids.shape[1], device=self.device) < lengths[:, None]).long()
        with torch.inference_mode():
            states = self.model.encode_passage(ids, mask)
        out = {"row": batch["row"], "states": states.values.cpu().numpy()}
        if states.scale is not None:
            out["scale"] = states.scale[:, 0, :].cpu().numpy()
        return out


def _absolute(model: str) -> str:
    """A local checkpoint as an absolute path, so actors with another working directory find it too."""
    path = Path(resolve_model(model))
    return str(path.resolve()) if path.exists() else str(model)


def load_model(model: str, overrides: dict) -> DecoupledModel:
    """The checkpoint ``model`` as a DecoupledModel with ``overrides`` applied to its decoupling config."""
    return DecoupledModel.from_pretrained(resolve_model(model), **overrides)


def _pool_resources(options: CacheBuildOptions) -> tuple[float, int]:
    """(GPUs, CPUs) per actor from the options and the cluster."""
    cluster = ray.cluster_resources()
    gpus = options.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if cluster.get("GPU", 0) >= 1 else 0.0
    cpus = options.cpus_per_worker or max(1, int(cluster.get("CPU", 1)) // options.workers)
    return gpus, cpus


def encode_rows(plan: Plan, rows: np.ndarray, options: CacheBuildOptions, identity_sha256: str,
                blocks: int) -> Iterator[dict[str, np.ndarray]]:
    """Encoded batches (``row``, ``states``[, ``scale``]) of the plan ``rows``, in completion order. The rows are cut
    into ``blocks`` blocks (one per missing shard), or one per worker when there are fewer shards, so no actor idles."""
    import ray.data

    quiet_ray_data()
    gpus, cpus = _pool_resources(options)
    items = [{"row": int(r), "input_ids": plan.input_ids[r], "length": int(plan.lengths[r])} for r in rows]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, min(max(blocks, options.workers), len(items))))
    encoded = dataset.map_batches(
        PassageEncoder,
        fn_constructor_kwargs={"model": _absolute(options.model), "overrides": options.model_overrides(),
                               "identity_sha256": identity_sha256, "threads": cpus},
        batch_size=options.batch_size,
        compute=ray.data.ActorPoolStrategy(size=options.workers),
        num_cpus=cpus,
        num_gpus=gpus,
        batch_format="numpy",
        runtime_env={"env_vars": worker_env()},  # the command's console settings, on a cluster's nodes too
    )
    yield from encoded.iter_batches(batch_size=None, batch_format="numpy")


# ---- the build ------------------------------------------------------------------------------------------------------
class _ShardAssembler:
    """Collects encoded rows per shard; hands back a shard once all its rows arrived."""

    def __init__(self, total_rows: int, rows_per_shard: int) -> None:
        self.total, self.per_shard = total_rows, rows_per_shard
        self.pending: dict[int, list[dict[str, np.ndarray]]] = {}
        self.counts: dict[int, int] = {}

    def add(self, batch: dict[str, np.ndarray]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        shard_of = batch["row"] // self.per_shard
        for shard in np.unique(shard_of):
            take = shard_of == shard
            self.pending.setdefault(int(shard), []).append({k: v[take] for k, v in batch.items()})
            self.counts[int(shard)] = self.counts.get(int(shard), 0) + int(take.sum())
            if self.counts[int(shard)] == self._size(int(shard)):
                yield int(shard), self._finish(int(shard))

    def _size(self, shard: int) -> int:
        return min(self.per_shard, self.total - shard * self.per_shard)

    def _finish(self, shard: int) -> dict[str, np.ndarray]:
        pieces = self.pending.pop(shard)
        merged = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
        order = np.argsort(merged["row"], kind="stable")
        return {k: v[order] for k, v in merged.items()}


def build_cache(options: CacheBuildOptions, *, progress: Callable[[ShardEntry], None] | None = None,
                show_progress: bool = False) -> BuildSummary:
    """Build (or resume) the cache described by ``options``; ``progress`` is called after each shard is written.
    Windows left unset come from the model's training settings (`CacheBuildOptions.settled`). With
    ``show_progress``, windowing the passages shows its progress on stderr when it is a terminal (the encoding
    shows Ray Data's progress bars there)."""
    options, _ = options.settled()
    plan, fresh, report = _prepare(options, show_progress)
    out = Path(options.out)
    manifest = _resume(out, fresh)
    write_manifest(out, manifest)
    missing = _missing_rows(manifest, len(plan))
    started = time.perf_counter()
    if len(missing):
        with ray_session(options.ray_address, dashboard=False, num_cpus=os.cpu_count()):
            manifest = _encode_and_write(plan, missing, manifest, options, out, progress)
    seconds = time.perf_counter() - started if len(missing) else 0.0
    if not manifest.complete:
        raise CacheError(f"cache {out}: the pipeline ended with {len(manifest.shards)} of {manifest.num_shards} "
                         "shards written; rerun the same command to finish it")
    written = len({int(r) // options.rows_per_shard for r in missing})
    return BuildSummary(
        out=str(out), passages=plan.passages, windows=len(plan), shards=manifest.num_shards, shards_written=written,
        shards_kept=manifest.num_shards - written, encode_seconds=seconds, windows_encoded=len(missing),
        bytes=sum(s.bytes for s in manifest.shards), valid_tokens=sum(s.valid_tokens for s in manifest.shards),
        state_bytes_per_token=state_bytes_per_token(manifest.state_width, manifest.cache_dtype,
                                                    manifest.max_passage_len),
        load_report=report, passages_encoded=len({plan.windows[r].passage_id for r in missing}),
    )


def _prepare(options: CacheBuildOptions, show_progress: bool) -> tuple[Plan, Manifest, LoadReport]:
    """On the driver: load and check the model, window the passages, describe the cache to build."""
    overrides = options.model_overrides()
    model = load_model(options.model, overrides)
    if model.tokenizer is None:
        raise CacheError(f"model {options.model}: no tokenizer files in the checkpoint; save the tokenizer beside it")
    check_joint_length(model.config.max_question_len, options.max_passage_len,
                       model.hf_config.max_position_embeddings, options.model)
    passages, report = load_passages(options.data)
    if not passages:
        raise DataError(f"{options.data}: no passages to cache ({report.summary()})")
    with Progress("windowing", len(passages), "passages", enabled=show_progress) as windowing:
        plan = plan_windows(passages, model.tokenizer, max_passage_len=options.max_passage_len,
                            doc_stride=options.doc_stride, progress=windowing.advance)
    identity = model_identity(model)
    _check_reproducible(options.model, overrides, identity)
    return plan, _fresh_manifest(options, model, identity, tokenizer_sha256(model.tokenizer), plan), report


def _encode_and_write(plan: Plan, missing: np.ndarray, manifest: Manifest, options: CacheBuildOptions, out: Path,
                      progress: Callable[[ShardEntry], None] | None) -> Manifest:
    """Run the Ray Data pipeline over the ``missing`` plan rows; write each shard (and the manifest) once complete."""
    schema = shard_schema(manifest.max_passage_len, manifest.state_width, manifest.cache_dtype)
    assembler = _ShardAssembler(len(plan), options.rows_per_shard)
    blocks = manifest.num_shards - len(manifest.shards)
    for batch in encode_rows(plan, missing, options, manifest.model["sha256"], blocks):
        for shard, rows in assembler.add(batch):
            data = plan.shard_data(rows["row"], rows["states"], rows.get("scale"))
            entry = write_shard(out, shard, data, schema)
            manifest = with_shard(manifest, entry)
            write_manifest(out, manifest)
            if progress is not None:
                progress(entry)
    return manifest


def _check_reproducible(model: str, overrides: dict, identity: dict) -> None:
    """Refuse a checkpoint that loads with random weights: no actor could reproduce the driver's states."""
    if model_identity(load_model(model, overrides))["sha256"] != identity["sha256"]:
        raise CacheError(_RANDOM_WEIGHTS.format(model=model))


def _fresh_manifest(options: CacheBuildOptions, model: DecoupledModel, identity: dict, tokenizer_digest: str,
                    plan: Plan) -> Manifest:
    config = model.config
    schema = shard_schema(options.max_passage_len, model.state_width, config.cache_dtype)
    return Manifest(
        model=identity, tokenizer_sha256=tokenizer_digest, split=config.split,
        compression_ratio=config.compression_ratio, cache_dtype=config.cache_dtype, hidden_size=model.hidden_size,
        state_width=model.state_width, max_passage_len=options.max_passage_len, doc_stride=options.doc_stride,
        rows_per_shard=options.rows_per_shard, plan_sha256=plan.sha256(), source=options.data,
        passages=plan.passages, windows=len(plan), columns=schema_columns(schema),
    )


def _resume(out: Path, fresh: Manifest) -> Manifest:
    """The manifest to continue from: ``fresh`` plus every intact shard an earlier run of the same build wrote."""
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    if not (out / MANIFEST).is_file():
        if any(out.iterdir()):
            raise CacheError(f"--out {out} is not empty and holds no {MANIFEST}; use a new or empty directory")
        return fresh
    old = read_manifest(out)
    differing = [k for k, v in fresh.settings().items() if old.settings()[k] != v]
    if differing:
        names = ", ".join("passages or their windows" if k == "plan_sha256" else k for k in differing)
        raise CacheError(f"--out {out} holds a cache built differently ({names}); use another --out or delete it")
    manifest = fresh
    for entry in old.shards:
        if check_shard_file(out, entry) is None:
            manifest = with_shard(manifest, entry)
    return manifest


def _missing_rows(manifest: Manifest, total: int) -> np.ndarray:
    done = {shard_index(s.file) for s in manifest.shards}
    n = manifest.rows_per_shard
    return np.array([r for shard in range(manifest.num_shards) if shard not in done
                     for r in range(shard * n, min((shard + 1) * n, total))], dtype=np.int64)
