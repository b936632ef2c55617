"""The plan of a passage cache: the passages of a data source (a SQuAD-style source, or a .jsonl/.parquet corpus of
``{id, text}`` records), each windowed exactly as evaluation windows it (``trainables.data.qa_features.passage_windows``
with the same ``max_passage_len`` and ``doc_stride``), so ``(passage_id, window)`` keys match the evaluation
features. Windows are in a deterministic order: passages in first-appearance order, then window number.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from trainables.cache.format import ShardData
from trainables.data.errors import DataError, LoadReport, problem_line
from trainables.data.features import PassageWindow, pad_ids, pad_offsets
from trainables.data.qa_features import passage_windows
from trainables.data.squad import load_squad


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
    input_ids, mask = pad_ids([w.input_ids for w in windows], max_passage_len, tokenizer.pad_token_id)
    offsets = pad_offsets(windows, max_passage_len).astype(np.int32)
    return Plan(windows, input_ids.numpy().astype(np.int32), mask.sum(dim=1).numpy().astype(np.int32), offsets,
                np.array(text_starts, dtype=np.int32), texts, len(passages))
