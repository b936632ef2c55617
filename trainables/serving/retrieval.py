"""BM25 retrieval over a passage cache's windows (bm25s: an embedded BM25 on sparse matrices, no JVM).

The index is built once from the windows' text (the cache's ``text`` column, in plan order, so document i is the
cache's row i) and kept beside the shards as ``<cache>/bm25/``, stamped with the sha256 of the cache's
``manifest.json`` (which names every shard's sha256): a cache that changed gets a rebuilt index. A cache directory
that cannot be written keeps its index in memory only. Text is split as bm25s does by default (lower case, words of
two or more characters, English stop words left out), questions the same way.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainables.cache.format import MANIFEST, read_manifest, read_shard

INDEX_DIR = "bm25"
STAMP = "stamp.json"
STOPWORDS = "en"


@dataclass(frozen=True)
class IndexSource:
    """Where an index came from, for the command's line."""

    built: bool
    """True when it was built now, False when read from ``<cache>/bm25``."""
    saved: str | None
    """Why it could not be kept beside the cache (None when it was, or was read from there)."""


class WindowIndex:
    """BM25 over a cache's windows; `search` returns row numbers in the cache's plan order."""

    def __init__(self, retriever, windows: int) -> None:
        self._retriever = retriever
        self.windows = windows

    @classmethod
    def open(cls, cache_dir: str | Path, *, save: bool = True) -> tuple["WindowIndex", IndexSource]:
        """The index of ``cache_dir``: read from ``<cache>/bm25`` when its stamp matches the cache, else built from
        the windows' text (and, with ``save``, written there atomically)."""
        import bm25s

        folder = Path(cache_dir) / INDEX_DIR
        stamp = _stamp(cache_dir)
        if _read_stamp(folder) == stamp:
            return cls(bm25s.BM25.load(str(folder), show_progress=False, verbosity=0), stamp["windows"]), \
                IndexSource(built=False, saved=None)
        retriever = bm25s.BM25()
        retriever.index(_tokens(_window_texts(cache_dir)), show_progress=False)
        problem = _save(retriever, folder, stamp) if save else "not asked to"
        return cls(retriever, stamp["windows"]), IndexSource(built=True, saved=problem)

    def search(self, questions: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows (n, k') int64 and BM25 scores (n, k') float32 of each question's best windows, best first, with
        k' = min(k, windows). A question sharing no word with any window gets windows of score 0."""
        k = min(k, self.windows)
        rows, scores = self._retriever.retrieve(_tokens(questions), k=k, show_progress=False)
        return np.asarray(rows, dtype=np.int64).reshape(len(questions), k), \
            np.asarray(scores, dtype=np.float32).reshape(len(questions), k)


def _tokens(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords=STOPWORDS, return_ids=False, show_progress=False)


def _window_texts(cache_dir: str | Path) -> list[str]:
    manifest = read_manifest(cache_dir)
    texts: list[str] = []
    for entry in manifest.shards:
        texts.extend(read_shard(cache_dir, entry, columns=["text"]).column("text").to_pylist())
    return texts


def _stamp(cache_dir: str | Path) -> dict:
    """What the index depends on: the cache's manifest (every shard's sha256), the library and the text split."""
    import bm25s

    manifest_bytes = (Path(cache_dir) / MANIFEST).read_bytes()
    return {"manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(), "bm25s": bm25s.__version__,
            "stopwords": STOPWORDS, "windows": read_manifest(cache_dir).windows}


def _read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _save(retriever, folder: Path, stamp: dict) -> str | None:
    """Write the index into ``folder`` through a temporary folder renamed into place (a crash leaves the old index
    or the new one); the stamp is written last. Returns why it could not be written, or None."""
    staging = folder.with_name(f"{folder.name}.tmp-{_token()}")
    try:
        retriever.save(str(staging), show_progress=False)
        (staging / STAMP).write_text(json.dumps(stamp), encoding="utf-8")
        if folder.exists():
            old = folder.with_name(f"{folder.name}.old-{_token()}")
            folder.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        staging.rename(folder)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        return err.strerror or type(err).__name__
    return None


def _token() -> str:
    import os

    return f"{os.getpid()}-{os.urandom(3).hex()}"
