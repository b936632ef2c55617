"""Build a passage cache: window the passages, encode them with Ray Data, write sharded Parquet — the facade of
`decouple cache build` over the stages in `trainables.cache` (plan, encoder, assembly, format).

Design. The driver loads the model once (for its identity and tokenizer), reads the passages and windows them with
exactly the call evaluation uses (`trainables.cache.plan`), so ``(passage_id, window)`` keys match the evaluation
features; shard ``i`` holds plan rows ``[i*N, (i+1)*N)``.

The build holds ``--out`` under a lock (`trainables.cache.assembly.build_lock`): a second build into it meanwhile is
refused in one line. Before encoding, the driver re-reads ``manifest.json``. A shard already listed there whose file
has the recorded sha256 is kept; every other shard is *missing*. A cache with none missing is left as it is (its
rerun writes nothing, so it works on a read-only disk); otherwise the manifest is written, and only the missing
shards' windows go through Ray Data:
``from_items`` -> ``map_batches(PassageEncoder)`` on an ``ActorPoolStrategy`` pool, where each actor loads the model
once and runs ``encode_passage`` (lower layers -> compression -> quantization) on batches of windows, on a GPU when
the actor has one. The driver consumes the encoded batches with ``iter_batches`` in whatever order they finish,
groups rows by shard and, as soon as a shard has all its rows, writes it (temporary name, then rename) and records
it in the manifest (also rewritten atomically). A crash therefore loses at most the shards in flight, and a rerun
with the same arguments encodes only those. Buffered rows are bounded by the shards in flight, since input blocks
are cut along shard boundaries and Ray Data streams them roughly in order.

A checkpoint that loads with random weights is refused before any encoding (`trainables.cache.encoder`).
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray

from orchestrator.cache_options import CacheBuildOptions
from orchestrator.console import quiet_ray_data, worker_env
from orchestrator.progress import Progress
from orchestrator.ray_session import ray_session
from trainables import storage
from trainables.cache.assembly import build_lock, fresh_manifest, missing_rows, resume, write_shards
from trainables.cache.encoder import PassageEncoder, absolute_model, check_reproducible, load_model
from trainables.cache.format import CacheError, Manifest, ShardEntry, model_identity, tokenizer_sha256, write_manifest
from trainables.cache.plan import Plan, load_passages, plan_windows
from trainables.data.errors import DataError, LoadReport
from trainables.data.features import check_joint_length
from trainables.model.quantization import state_bytes_per_token


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
    """Bytes of one passage token's cached state (`trainables.model.quantization.state_bytes_per_token`): the figure a sweep
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


# ---- the Ray Data encoder -------------------------------------------------------------------------------------------
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
        fn_constructor_kwargs={"model": absolute_model(options.model), "overrides": options.model_overrides(),
                               "identity_sha256": identity_sha256, "threads": cpus},
        batch_size=options.batch_size,
        compute=ray.data.ActorPoolStrategy(size=options.workers),
        num_cpus=cpus,
        num_gpus=gpus,
        batch_format="numpy",
        runtime_env={"env_vars": worker_env()},  # the command's console settings, on a cluster's nodes too
    )
    yield from encoded.iter_batches(batch_size=None, batch_format="numpy")


def build_cache(options: CacheBuildOptions, *, progress: Callable[[ShardEntry], None] | None = None,
                show_progress: bool = False) -> BuildSummary:
    """Build (or resume) the cache described by ``options``; ``progress`` is called after each shard is written.
    Windows left unset come from the model's training settings (`CacheBuildOptions.settled`). With
    ``show_progress``, windowing the passages shows its progress on stderr when it is a terminal (the encoding
    shows Ray Data's progress bars there)."""
    options, _ = options.settled()
    plan, fresh, report = _prepare(options, show_progress)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    with build_lock(out):
        manifest = resume(out, fresh)
        missing = missing_rows(manifest, len(plan))
        started = time.perf_counter()
        if len(missing):  # a finished cache is left as it is: its rerun writes nothing, on a read-only disk too
            storage.check_writable(out, options.out, "out")
            write_manifest(out, manifest)
            with ray_session(options.ray_address, dashboard=False, num_cpus=os.cpu_count()):
                blocks = manifest.num_shards - len(manifest.shards)
                batches = encode_rows(plan, missing, options, manifest.model["sha256"], blocks)
                # Closed while Ray runs: a pipeline left open (a signal, a full disk) ended in Ray Data's traceback
                # when it was collected after Ray had stopped.
                with contextlib.closing(batches):
                    manifest = write_shards(plan, batches, manifest, out, progress)
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
    check_joint_length(model.config.max_question_len, options.max_passage_len,
                       model.hf_config.max_position_embeddings, options.model)
    passages, report = load_passages(options.data)
    if not passages:
        raise DataError(f"{options.data}: no passages to cache ({report.summary()})")
    with Progress("windowing", len(passages), "passages", enabled=show_progress) as windowing:
        plan = plan_windows(passages, model.tokenizer, max_passage_len=options.max_passage_len,
                            doc_stride=options.doc_stride, progress=windowing.advance)
    identity = model_identity(model)
    check_reproducible(options.model, overrides, identity)
    manifest = fresh_manifest(model, identity, tokenizer_sha256(model.tokenizer), plan,
                              max_passage_len=options.max_passage_len, doc_stride=options.doc_stride,
                              rows_per_shard=options.rows_per_shard, source=options.data)
    return plan, manifest, report
