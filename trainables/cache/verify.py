"""Checking a passage cache against its manifest (`decouple cache verify`): every shard's checksum, size, row count
and schema, its decoded key columns, and with ``deep`` every column. The layout checked is `trainables.cache.format`'s.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trainables.cache.format import (
    ARROW_STATE_TYPES,
    MANIFEST,
    Manifest,
    ShardEntry,
    check_shard_file,
    read_manifest,
    schema_columns,
    shard_schema,
    tensor_column,
)


@dataclass
class VerifyReport:
    """What `verify_cache` checked and every problem it found (one line each)."""

    cache_dir: str
    deep: bool = False
    """Whether every column was decoded (`verify_cache`)."""
    shards: int = 0
    rows: int = 0
    bytes: int = 0
    valid_tokens: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def disk_bytes_per_token(self) -> float:
        """The shards' bytes per valid passage token (states of every window position, token ids, offsets, text);
        the states alone are ``state_bytes_per_token`` (`trainables.model.quantization`)."""
        return self.bytes / self.valid_tokens if self.valid_tokens else 0.0

    def summary(self) -> str:
        status = ("ok" if self.ok else f"{len(self.problems)} problem(s)") + (" (deep)" if self.deep else "")
        return (f"{self.cache_dir}: {status}: {self.shards} shards, {self.rows} windows, {self.bytes} bytes "
                f"({self.disk_bytes_per_token:.1f} disk bytes/token)")


def verify_cache(cache_dir: str | Path, *, deep: bool = False) -> VerifyReport:
    """Check the manifest, then every shard: checksum, size, row count and schema against the manifest, and its
    decoded rows (`_check_rows`: window lengths, valid tokens, no window twice in the cache); with ``deep`` every
    column is decoded too (`_check_tensors`: shapes, dtypes, finite values, zero padding), about ten times the
    time of the checksums. Collects a line per problem.

    A missing or unreadable manifest raises `CacheError` (nothing else can be checked).
    """
    manifest = read_manifest(cache_dir)
    report = VerifyReport(str(cache_dir), deep=deep)
    seen: dict[tuple[str, int], str] = {}
    if not manifest.complete or len(manifest.shards) != manifest.num_shards:
        report.problems.append(f"{cache_dir}: incomplete: {len(manifest.shards)} of {manifest.num_shards} shards "
                               "written; rerun `decouple cache build` with the same arguments")
    expected = schema_columns(shard_schema(manifest.max_passage_len, manifest.state_width, manifest.cache_dtype))
    if manifest.columns != expected:
        report.problems.append(f"{cache_dir}/{MANIFEST}: column schema does not match a {manifest.cache_dtype} "
                               f"cache of P={manifest.max_passage_len}, C={manifest.state_width}; rebuild the cache")
    for entry in manifest.shards:
        report.shards += 1
        problem = (check_shard_file(cache_dir, entry) or _check_shard_contents(cache_dir, entry, expected)
                   or _check_rows(cache_dir, entry, manifest, seen, deep))
        if problem:
            report.problems.append(problem)
            continue
        report.rows += entry.rows
        report.bytes += entry.bytes
        report.valid_tokens += entry.valid_tokens
    if sum(s.rows for s in manifest.shards) != manifest.windows and manifest.complete:
        report.problems.append(f"{cache_dir}/{MANIFEST}: shards hold {sum(s.rows for s in manifest.shards)} rows "
                               f"but the plan has {manifest.windows}; rebuild the cache")
    return report


def _check_shard_contents(cache_dir: str | Path, entry: ShardEntry, expected: list[dict]) -> str | None:
    path = Path(cache_dir) / entry.file
    try:
        metadata = pq.ParquetFile(path)
        rows, columns = metadata.metadata.num_rows, schema_columns(metadata.schema_arrow)
    except (pa.ArrowException, OSError) as err:
        return f"{path}: unreadable Parquet ({str(err).splitlines()[0]}); delete it and rerun the build"
    if rows != entry.rows:
        return f"{path}: {rows} rows but the manifest says {entry.rows}; delete it and rerun the build"
    if columns != expected:
        return f"{path}: columns {[c['name'] for c in columns]} do not match the manifest schema; rebuild the cache"
    return None


def _check_rows(cache_dir: str | Path, entry: ShardEntry, manifest: Manifest, seen: dict[tuple[str, int], str],
                deep: bool) -> str | None:
    """Decode the shard (the key columns, or all with ``deep``): row count, window lengths in 1..P, valid tokens as the
    manifest records, and no ``(passage_id, window)`` already seen in an earlier shard (``seen`` is updated)."""
    path = Path(cache_dir) / entry.file
    try:
        table = pq.read_table(path, columns=None if deep else ["passage_id", "window", "length"])
    except (pa.ArrowException, OSError) as err:
        return f"{path}: cannot be decoded ({str(err).splitlines()[0]}); delete it and rerun the build"
    lengths = table.column("length").to_numpy()
    if table.num_rows != entry.rows:
        return f"{path}: decodes to {table.num_rows} rows but the manifest says {entry.rows}; rebuild the cache"
    if len(lengths) and not 1 <= lengths.min() <= lengths.max() <= manifest.max_passage_len:
        return f"{path}: window lengths outside 1..{manifest.max_passage_len}; delete it and rerun the build"
    if int(lengths.sum()) != entry.valid_tokens:
        return (f"{path}: {int(lengths.sum())} valid tokens but the manifest says {entry.valid_tokens}; delete it and "
                "rerun the build")
    for key in zip(table.column("passage_id").to_pylist(), table.column("window").to_pylist()):
        if key in seen:
            return f"{path}: window {key[1]} of passage {key[0]} is also in {seen[key]}; rebuild the cache"
        seen[key] = entry.file
    return _check_tensors(path, table, manifest, lengths) if deep else None


def _check_tensors(path: Path, table: pa.Table, manifest: Manifest, lengths: np.ndarray) -> str | None:
    """Every tensor column of a decoded shard: shape (rows, *manifest shape), dtype, finite states and scales, and
    states zero on padding (`trainables.model.quantization` stores them so)."""
    dtypes = {"input_ids": np.int32, "offsets": np.int32, "scale": np.float32,
              "states": ARROW_STATE_TYPES[manifest.cache_dtype].to_pandas_dtype()}
    arrays = {}
    for name, shape in manifest.shapes.items():
        if name == "scale" and manifest.cache_dtype != "int8":
            continue
        array = tensor_column(table, name)
        expected = (np.dtype(dtypes[name]), (table.num_rows, *shape))
        if (array.dtype, array.shape) != expected:
            return (f"{path}: column {name} decodes to {array.dtype} {list(array.shape)}, expected {expected[0]} "
                    f"{list(expected[1])}; delete it and rerun the build")
        arrays[name] = array
    floats = [arrays[n] for n in ("states", "scale") if n in arrays and arrays[n].dtype.kind == "f"]
    if not all(np.isfinite(a).all() for a in floats):
        return f"{path}: states or scales hold NaN or infinity; delete it and rerun the build"
    padding = np.arange(manifest.max_passage_len)[None, :] >= lengths[:, None]  # (rows, P)
    if np.any(arrays["states"][padding]):
        return f"{path}: states are not zero on padding; delete it and rerun the build"
    return None
