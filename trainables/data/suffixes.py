"""The local files each task's loader reads, by suffix: one table, so that a loader refusing a file of the other
task sends it to the loader that reads it (`trainables.data.squad`, `trainables.data.pairs`)."""
from __future__ import annotations

from pathlib import Path

FILE_SUFFIXES = {"qa": (".json",), "pair": (".tsv", ".jsonl")}
"""Task -> the suffixes of the local files its loader reads: SQuAD JSON; pair TSV and JSON lines."""


def task_of_file(path: str | Path) -> str | None:
    """The task whose loader reads a file named ``path`` (by its suffix), or None when no loader does."""
    return next((task for task, suffixes in FILE_SUFFIXES.items() if str(path).endswith(suffixes)), None)

