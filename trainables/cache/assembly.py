"""Writing a passage cache: encoded rows gathered per shard, each shard written (temporary name, then rename) as soon
as it has all its rows and recorded in ``manifest.json`` (also rewritten atomically), so a crash loses at most the
shards in flight. A rerun of the same build keeps every intact shard (`resume`) and encodes only the others
(`missing_rows`).

Files under the cache directory: ``manifest.json`` (`trainables.cache.format.Manifest`) and
``shard-XXXXX.parquet`` (`trainables.cache.format.shard_schema`); a build holds the directory (`build_lock`).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from trainables.cache.format import (
    MANIFEST,
    CacheError,
    Manifest,
    ShardEntry,
    check_shard_file,
    read_manifest,
    remove_stale_temporaries,
    schema_columns,
    shard_index,
    shard_schema,
    with_shard,
    write_manifest,
    write_shard,
)
from trainables.cache.plan import Plan
from trainables.model.decoupled import DecoupledModel


class ShardAssembler:
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


def write_shards(plan: Plan, batches: Iterable[dict[str, np.ndarray]], manifest: Manifest, out: Path,
                 progress: Callable[[ShardEntry], None] | None = None) -> Manifest:
    """Gather the encoded ``batches`` (``row``, ``states``[, ``scale``], in any order) per shard; write each shard, and
    the manifest after it, as soon as all its rows arrived. Returns the manifest with every shard written."""
    schema = shard_schema(manifest.max_passage_len, manifest.state_width, manifest.cache_dtype)
    assembler = ShardAssembler(len(plan), manifest.rows_per_shard)
    for batch in batches:
        for shard, rows in assembler.add(batch):
            data = plan.shard_data(rows["row"], rows["states"], rows.get("scale"))
            entry = write_shard(out, shard, data, schema)
            manifest = with_shard(manifest, entry)
            write_manifest(out, manifest)
            if progress is not None:
                progress(entry)
    return manifest


def fresh_manifest(model: DecoupledModel, identity: dict, tokenizer_digest: str, plan: Plan, *, max_passage_len: int,
                   doc_stride: int, rows_per_shard: int, source: str) -> Manifest:
    """The manifest of a cache of ``plan`` encoded by ``model``, before any shard is written."""
    config = model.config
    schema = shard_schema(max_passage_len, model.state_width, config.cache_dtype)
    return Manifest(
        model=identity, tokenizer_sha256=tokenizer_digest, split=config.split,
        compression_ratio=config.compression_ratio, cache_dtype=config.cache_dtype, hidden_size=model.hidden_size,
        state_width=model.state_width, max_passage_len=max_passage_len, doc_stride=doc_stride,
        rows_per_shard=rows_per_shard, plan_sha256=plan.sha256(), source=source,
        passages=plan.passages, windows=len(plan), columns=schema_columns(schema),
    )


@contextlib.contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Hold the existing cache directory ``out`` for one build: an exclusive lock on the directory itself, released
    when the block ends or the process dies. A second build into it meanwhile is refused in one line, instead of both
    encoding every shard and each deleting the other's temporaries. Taking it writes nothing, so a finished cache on a
    read-only disk re-runs without writing; on a file system that cannot lock a directory (some network mounts) the
    build runs unguarded, as every build did before the lock."""
    handle = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CacheError(f"--out {out}: another `decouple cache build` is writing this cache now; wait for it to "
                             "end, then rerun this command to finish or reuse what it wrote") from None
        except OSError:
            pass  # no directory locks here: unguarded
        yield
    finally:
        os.close(handle)


def resume(out: Path, fresh: Manifest) -> Manifest:
    """The manifest to continue from: ``fresh`` plus every intact shard an earlier run of the same build wrote. Writes
    nothing but the removal of a crashed build's temporaries; the caller holds `build_lock`."""
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


def missing_rows(manifest: Manifest, total: int) -> np.ndarray:
    """The plan rows of every shard ``manifest`` does not list yet, in order."""
    done = {shard_index(s.file) for s in manifest.shards}
    n = manifest.rows_per_shard
    return np.array([r for shard in range(manifest.num_shards) if shard not in done
                     for r in range(shard * n, min((shard + 1) * n, total))], dtype=np.int64)
