"""The on-disk format of a passage cache: sharded Parquet files and the ``manifest.json`` beside them.

Layout of a cache directory::

    manifest.json            what built the cache and every shard's row count and sha256 (see `Manifest`)
    shard-00000.parquet      rows [0, N) of the build plan, N = rows_per_shard
    shard-00001.parquet      rows [N, 2N) ...

One row is one passage window (see ``trainables.data.features.PassageWindow``); its columns (`shard_schema`):

    passage_id   string                          content hash of a SQuAD context, or a corpus record's id
    window       int32                           window number within the passage
    length       int32                           valid tokens (window tokens + [SEP]); the rest is padding
    input_ids    fixed_shape_tensor<int32>[P]    window token ids, padded
    offsets      fixed_shape_tensor<int32>[P,2]  (start, end) character offsets into the passage; -1 for [SEP]/pad
    text_start   int32                           character offset of ``text`` in the passage
    text         string                          the passage characters the window covers, so a span becomes text
                                                 without the data: passage[s:e] == text[s-text_start:e-text_start]
    states       fixed_shape_tensor<D>[P,C]      `encode_passage` output, D = int8 | halffloat | float; zero padding
    scale        fixed_shape_tensor<float>[C]    int8 only: the per-(window, channel) dequantization scale

Tensor columns use Arrow's canonical ``arrow.fixed_shape_tensor`` extension type, so plain pyarrow (or any Arrow
reader that knows the canonical types) reads them back as ``(rows, *shape)`` arrays. Shards are zstd-compressed.

Every file is written under a temporary name and renamed into place (`write_shard`, `write_manifest`), so a crash
leaves either the previous file or the new one, never half of one. A cache is only used when its manifest says it
is complete and matches the model (`check_compatible`): a different model, split, ratio, dtype, tokenizer or
windowing is refused with one line naming what differs. A cache is self-contained: its manifest names only its own
shard files, by name, and agrees with itself, or no reader (nor `cache verify`) takes it (`read_manifest`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from trainables import storage
from trainables.model.config import DecoupledConfig

FORMAT = "decoupled-passage-cache"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
COMPRESSION = "zstd"
_TMP_MARK = ".tmp-"
_SHARD_NAME = re.compile(r"shard-[0-9]{5,}\.parquet")
"""The only file names a manifest may list (`shard_name`)."""
_FIELD_TYPES = {"str": str, "int": int}
"""`ShardEntry`'s annotations (strings under ``from __future__ import annotations``) as the types JSON reads back."""
_IDENTITY_TYPES = {"weights_sha256": str, "hf_config": dict, "decoupled": dict, "sha256": str}
"""`model_identity`'s entries, as readers use them."""
ARROW_STATE_TYPES = {"fp32": pa.float32(), "fp16": pa.float16(), "int8": pa.int8()}
# HF config keys that describe how a checkpoint was saved or run, not what it computes.
_VOLATILE_CONFIG_KEYS = {
    "transformers_version", "architectures", "decoupled", "dtype", "torch_dtype", "output_hidden_states",
    "output_attentions", "return_dict", "use_cache",
}


class CacheError(ValueError):
    """A cache that is missing, incomplete, corrupted or built for something else; one line naming the fix."""


# ---- identity -------------------------------------------------------------------------------------------------------
def model_identity(model) -> dict:
    """What a cache's states depend on, for a ``DecoupledModel``: weights hash, HF config, decoupling config.

    ``sha256`` digests the other three entries; two models with the same ``sha256`` produce the same states.
    """
    hf_config = {k: v for k, v in sorted(model.hf_config.to_dict().items())
                 if not k.startswith("_") and k not in _VOLATILE_CONFIG_KEYS}
    identity = {
        "weights_sha256": weights_sha256(model.state_dict()),
        "hf_config": json.loads(json.dumps(hf_config, default=str)),
        "decoupled": model.config.to_dict(),
    }
    identity["sha256"] = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return identity


def weights_sha256(state_dict: dict) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in sorted key order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def tokenizer_sha256(tokenizer) -> str:
    """sha256 of a tokenizer's class, vocabulary and special tokens: what its token ids depend on."""
    summary = {
        "class": type(tokenizer).__name__,
        "vocab": sorted(tokenizer.get_vocab().items()),
        "special": sorted(str(t) for t in tokenizer.all_special_tokens),
        "lowercase": bool(getattr(tokenizer, "do_lower_case", False)),
    }
    return hashlib.sha256(json.dumps(summary).encode()).hexdigest()


# ---- manifest -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardEntry:
    """One shard as the manifest records it."""

    file: str
    """File name inside the cache directory, e.g. ``shard-00003.parquet``."""
    rows: int
    """Windows stored in the shard."""
    sha256: str
    """sha256 of the whole file."""
    bytes: int
    """File size on disk."""
    valid_tokens: int
    """Sum of the rows' ``length``: tokens that are not padding."""


@dataclass(frozen=True)
class Manifest:
    """Everything needed to trust, reuse or resume a cache (written as ``manifest.json``)."""

    model: dict
    """`model_identity` of the model that encoded the passages."""
    tokenizer_sha256: str
    """`tokenizer_sha256` of the tokenizer that made the windows."""
    split: int
    """k of the model: states are the output of the lower k layers."""
    compression_ratio: int
    """r of the model: states are d/r wide."""
    cache_dtype: str
    """fp32 | fp16 | int8: how states are stored."""
    hidden_size: int
    """d of the model."""
    state_width: int
    """C: width of a stored state (lower width / r)."""
    max_passage_len: int
    """P: tokens per window, padding included."""
    doc_stride: int
    """Overlap in tokens between consecutive windows of a passage (``trainables.data.qa_features`` convention)."""
    rows_per_shard: int
    """N: shard i holds plan rows [i*N, (i+1)*N)."""
    plan_sha256: str
    """Digest of every planned window's passage id, window number and token ids, in plan order."""
    source: str
    """The ``--data`` the passages came from (informational)."""
    passages: int
    """Distinct passages in the plan."""
    windows: int
    """Rows in the plan (all shards together)."""
    columns: list[dict] = field(default_factory=list)
    """The shard schema: ``{"name", "type"}`` per column."""
    shards: list[ShardEntry] = field(default_factory=list)
    """Shards written so far, in plan order of their index."""
    complete: bool = False
    """True once every planned shard is written."""
    format: str = FORMAT
    """Always ``decoupled-passage-cache``."""
    format_version: int = FORMAT_VERSION
    """Bumped when the layout changes; readers refuse other versions."""

    @property
    def num_shards(self) -> int:
        return -(-self.windows // self.rows_per_shard)

    @property
    def shapes(self) -> dict[str, list[int]]:
        p, c = self.max_passage_len, self.state_width
        return {"input_ids": [p], "offsets": [p, 2], "states": [p, c], "scale": [c]}

    def settings(self) -> dict:
        """The fields a resumed build must share with the manifest it finds (everything but progress)."""
        keep = ("model", "tokenizer_sha256", *DecoupledConfig.CACHE_SETTINGS, "hidden_size", "state_width",
                "max_passage_len", "doc_stride", "rows_per_shard", "plan_sha256", "windows")
        return {k: getattr(self, k) for k in keep}

    def cache_settings(self) -> dict:
        """The model's settings the cache was built with (`DecoupledConfig.CACHE_SETTINGS`), by name."""
        return {k: getattr(self, k) for k in DecoupledConfig.CACHE_SETTINGS}

    def to_json(self) -> str:
        data = asdict(self)
        data["shapes"] = self.shapes
        return json.dumps(data, indent=2, sort_keys=True)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def shard_index(name: str) -> int:
    return int(name.removeprefix("shard-").removesuffix(".parquet"))


def read_manifest(cache_dir: str | Path) -> Manifest:
    """The manifest of ``cache_dir``; `CacheError` when it is missing, malformed, of another format, lists a file
    that is not one of the cache's own shards, or contradicts itself (`_contradiction`)."""
    folder = Path(cache_dir)
    if not folder.is_dir():
        what = "is a file, not a cache directory" if folder.exists() else "no such directory"
        raise CacheError(f"{cache_dir}: {what}; pass the directory that `decouple cache build --out` wrote")
    path = folder / MANIFEST
    if not path.is_file():
        raise CacheError(f"{path}: no manifest; build the cache with `decouple cache build --out {cache_dir}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CacheError(f"{path}: malformed JSON ({err}); rebuild the cache into an empty directory") from None
    except RecursionError:
        raise CacheError(f"{path}: JSON nested too deeply to read; rebuild the cache into an empty directory") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CacheError(f"{path}: not a {FORMAT} manifest; use a directory made by `decouple cache build`")
    if data.get("format_version") != FORMAT_VERSION:
        raise CacheError(f"{path}: format_version {data.get('format_version')} but this build reads "
                         f"{FORMAT_VERSION}; rebuild the cache with this version")
    data.pop("shapes", None)
    try:
        shards = [ShardEntry(**entry) for entry in data.pop("shards")]
        manifest = Manifest(**data, shards=shards)
    except (TypeError, KeyError) as err:
        raise CacheError(f"{path}: fields do not match the manifest layout ({err}); rebuild the cache") from None
    problem = _shard_entry_problem(manifest) or _contradiction(manifest)
    if problem:
        raise CacheError(f"{path}: {problem}")
    return manifest


def _shard_entry_problem(manifest: Manifest) -> str | None:
    """What is wrong with the shard entries: a cache is self-contained, so each names one of its own shard files by
    the name the build gives it (never a path that could lead outside the cache directory)."""
    for entry in manifest.shards:
        if not isinstance(entry.file, str) or not _SHARD_NAME.fullmatch(entry.file):
            return (f"shard entry {entry.file!r} is not a shard file of this cache (shard-NNNNN.parquet, beside the "
                    "manifest); rebuild the cache into an empty directory")
        wrong = [f.name for f in fields(ShardEntry) if type(getattr(entry, f.name)) is not _FIELD_TYPES[f.type]]
        if wrong:
            return (f"shard entry {entry.file!r} has {', '.join(wrong)} of the wrong type; rebuild the cache into an "
                    "empty directory")
    return None


def _contradiction(manifest: Manifest) -> str | None:
    """Where the manifest disagrees with itself: its split, ratio and dtype against its own model identity's
    decoupling config (a cache every reader would refuse, naming the wrong side). An identity without a decoupling
    config has nothing to contradict; a reader refuses it when it compares (`check_compatible`)."""
    if not isinstance(manifest.model, dict):
        return "model is not an object (the model identity); rebuild the cache into an empty directory"
    decoupled = manifest.model.get("decoupled")
    if not isinstance(decoupled, dict):
        return None
    for key in DecoupledConfig.CACHE_SETTINGS:
        if getattr(manifest, key) != decoupled.get(key):
            return (f"{key}={getattr(manifest, key)!r} but its model identity says {key}={decoupled.get(key)!r} "
                    "(model.decoupled); the manifest contradicts itself: rebuild the cache into an empty directory")
    return None


def write_manifest(cache_dir: str | Path, manifest: Manifest) -> None:
    path = Path(cache_dir) / MANIFEST
    with storage.staged(path, _tmp_path(path)) as tmp:
        tmp.write_bytes(manifest.to_json().encode("utf-8"))


def with_shard(manifest: Manifest, entry: ShardEntry) -> Manifest:
    """The manifest with ``entry`` recorded (replacing an older entry for the same file), shards in index order."""
    shards = [s for s in manifest.shards if s.file != entry.file] + [entry]
    shards.sort(key=lambda s: shard_index(s.file))
    return replace(manifest, shards=shards, complete=len(shards) == manifest.num_shards)


# ---- compatibility --------------------------------------------------------------------------------------------------
def check_compatible(manifest: Manifest, cache_dir: str | Path, identity: dict, tokenizer_digest: str | None = None,
                     *, max_passage_len: int | None = None, doc_stride: int | None = None) -> None:
    """Refuse (`CacheError`, one line) a cache that was not built by this model and windowing.

    ``identity`` is the reader's `model_identity`; ``max_passage_len``/``doc_stride``/``tokenizer_digest`` are
    checked when given. Incomplete caches are refused too.
    """
    where = f"cache {cache_dir}"
    lacking = [k for k, t in _IDENTITY_TYPES.items() if not isinstance(manifest.model.get(k), t)]
    if lacking:
        raise CacheError(f"{where}: its manifest's model identity lacks {', '.join(lacking)}; rebuild the cache with "
                         "`decouple cache build` into an empty directory")
    if not manifest.complete:
        raise CacheError(f"{where} is incomplete ({len(manifest.shards)} of {manifest.num_shards} shards); rerun "
                         "`decouple cache build` with the same arguments to finish it")
    model = identity["decoupled"]
    for key in DecoupledConfig.CACHE_SETTINGS:
        if getattr(manifest, key) != model[key]:
            raise CacheError(f"{where} was built with {key}={getattr(manifest, key)!r} but the model has "
                             f"{key}={model[key]!r}; rebuild the cache with this model or load the matching model")
    if manifest.model["hf_config"] != identity["hf_config"]:
        differing = sorted(k for k in {**manifest.model["hf_config"], **identity["hf_config"]}
                           if manifest.model["hf_config"].get(k) != identity["hf_config"].get(k))
        raise CacheError(f"{where} was built by a model of another architecture (config differs in "
                         f"{', '.join(differing)}); rebuild the cache with this model")
    differing = sorted(k for k in model if manifest.model["decoupled"].get(k) != model[k])
    if differing:
        raise CacheError(f"{where} was built by a model decoupled with other settings ({', '.join(differing)}); "
                         "load the model with the cache's settings or rebuild the cache")
    if manifest.model["sha256"] != identity["sha256"]:
        built, ours = manifest.model["weights_sha256"][:12], identity["weights_sha256"][:12]
        raise CacheError(f"{where} was built by a model with other weights (sha256 {built}…, this model's "
                         f"{ours}…); rebuild the cache with this model")
    if tokenizer_digest is not None and tokenizer_digest != manifest.tokenizer_sha256:
        raise CacheError(f"{where} was built with another tokenizer; rebuild it with this model's tokenizer")
    for key, value in (("max_passage_len", max_passage_len), ("doc_stride", doc_stride)):
        if value is not None and value != getattr(manifest, key):
            raise CacheError(f"{where} was built with {key}={getattr(manifest, key)} but this run uses "
                             f"{key}={value}; use the cache's setting or rebuild the cache")


# ---- shards ---------------------------------------------------------------------------------------------------------
def shard_schema(max_passage_len: int, state_width: int, cache_dtype: str) -> pa.Schema:
    """The Arrow schema of every shard of a cache with these shapes and dtype."""
    p, c = max_passage_len, state_width
    fields = [
        pa.field("passage_id", pa.string(), nullable=False),
        pa.field("window", pa.int32(), nullable=False),
        pa.field("length", pa.int32(), nullable=False),
        pa.field("input_ids", pa.fixed_shape_tensor(pa.int32(), [p])),
        pa.field("offsets", pa.fixed_shape_tensor(pa.int32(), [p, 2])),
        pa.field("text_start", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("states", pa.fixed_shape_tensor(ARROW_STATE_TYPES[cache_dtype], [p, c])),
    ]
    if cache_dtype == "int8":
        fields.append(pa.field("scale", pa.fixed_shape_tensor(pa.float32(), [c])))
    return pa.schema(fields)


def schema_columns(schema: pa.Schema) -> list[dict]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


@dataclass
class ShardData:
    """The columns of one shard as numpy arrays (n rows); see the module docstring for their meaning."""

    passage_ids: list[str]
    windows: np.ndarray
    """(n,) int."""
    lengths: np.ndarray
    """(n,) int."""
    input_ids: np.ndarray
    """(n, P) int."""
    offsets: np.ndarray
    """(n, P, 2) int."""
    text_starts: np.ndarray
    """(n,) int."""
    texts: list[str]
    states: np.ndarray
    """(n, P, C) int8 | float16 | float32."""
    scales: np.ndarray | None = None
    """(n, C) float32 for int8 states, else None."""

    def __len__(self) -> int:
        return len(self.passage_ids)


def write_shard(cache_dir: str | Path, index: int, data: ShardData, schema: pa.Schema) -> ShardEntry:
    """Write shard ``index`` atomically (temporary name, then rename) and return its manifest entry."""
    columns = [
        pa.array(data.passage_ids, pa.string()),
        pa.array(np.asarray(data.windows, np.int32)),
        pa.array(np.asarray(data.lengths, np.int32)),
        _tensor_array(data.input_ids, np.int32),
        _tensor_array(data.offsets, np.int32),
        pa.array(np.asarray(data.text_starts, np.int32)),
        pa.array(data.texts, pa.string()),
        _tensor_array(data.states, data.states.dtype),
    ]
    if data.scales is not None:
        columns.append(_tensor_array(data.scales, np.float32))
    table = pa.Table.from_arrays(columns, schema=schema)
    path = Path(cache_dir) / shard_name(index)
    with storage.staged(path, _tmp_path(path)) as tmp:
        pq.write_table(table, tmp, compression=COMPRESSION, **_column_encodings(schema))
        entry = ShardEntry(file=path.name, rows=len(data), sha256=sha256_file(tmp), bytes=tmp.stat().st_size,
                           valid_tokens=int(np.asarray(data.lengths).sum()))
    return entry


def read_shard(cache_dir: str | Path, entry: ShardEntry, columns: list[str] | None = None) -> pa.Table:
    """Columns of one shard; `CacheError` naming the shard when pyarrow cannot read it or rows are missing."""
    path = Path(cache_dir) / entry.file
    if not path.is_file():
        raise CacheError(f"{path}: shard listed in the manifest is missing; rerun `decouple cache build` to rewrite it")
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as err:
        raise CacheError(f"{path}: unreadable shard ({type(err).__name__}: {str(err).splitlines()[0]}); "
                         "run `decouple cache verify` and rebuild") from None
    if table.num_rows != entry.rows:
        raise CacheError(f"{path}: {table.num_rows} rows but the manifest says {entry.rows}; rebuild the cache")
    return table


def tensor_column(table: pa.Table, name: str) -> np.ndarray:
    """A fixed_shape_tensor column as one ``(rows, *shape)`` numpy array."""
    chunks = table.column(name).chunks
    arrays = [chunk.to_numpy_ndarray() for chunk in chunks]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def decode_shard(table: pa.Table) -> ShardData:
    """A shard's columns (`read_shard`) as the `ShardData` that `write_shard` wrote them from."""
    return ShardData(
        passage_ids=table.column("passage_id").to_pylist(),
        windows=table.column("window").to_numpy(),
        lengths=table.column("length").to_numpy(),
        input_ids=tensor_column(table, "input_ids"),
        offsets=tensor_column(table, "offsets"),
        text_starts=table.column("text_start").to_numpy(),
        texts=table.column("text").to_pylist(),
        states=tensor_column(table, "states"),
        scales=tensor_column(table, "scale") if "scale" in table.column_names else None,
    )


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def check_shard_file(cache_dir: str | Path, entry: ShardEntry) -> str | None:
    """One line describing what is wrong with a shard file (missing, size, checksum), or None when it is intact."""
    path = Path(cache_dir) / entry.file
    if not path.is_file():
        return f"{path}: missing; rerun `decouple cache build` with the same arguments to rewrite it"
    if path.stat().st_size != entry.bytes:
        return (f"{path}: {path.stat().st_size} bytes but the manifest says {entry.bytes}; the shard is corrupted, "
                "delete it and rerun the build")
    if sha256_file(path) != entry.sha256:
        return f"{path}: sha256 differs from the manifest; the shard is corrupted, delete it and rerun the build"
    return None


# ---- atomic files ---------------------------------------------------------------------------------------------------
def remove_stale_temporaries(cache_dir: str | Path) -> int:
    """Delete temporaries a crashed build left behind; returns how many."""
    stale = [p for p in Path(cache_dir).iterdir() if _TMP_MARK in p.name]
    for path in stale:
        path.unlink()
    return len(stale)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f"{path.name}{_TMP_MARK}{os.getpid()}")


def _column_encodings(schema: pa.Schema) -> dict:
    """Per-column Parquet encodings: delta for the monotone offsets (-60% on that column), byte-stream-split for the
    all-distinct int8 scales; dictionary + zstd (Parquet's default) for the rest, states included."""
    special = {"offsets.list.element": "DELTA_BINARY_PACKED", "scale.list.element": "BYTE_STREAM_SPLIT"}
    leaves = [f"{f.name}.list.element" if isinstance(f.type, pa.FixedShapeTensorType) else f.name for f in schema]
    return {"use_dictionary": [leaf for leaf in leaves if leaf not in special],
            "column_encoding": {leaf: enc for leaf, enc in special.items() if leaf in leaves}}


def _tensor_array(values: np.ndarray, dtype) -> pa.ExtensionArray:
    return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values, dtype=dtype))
