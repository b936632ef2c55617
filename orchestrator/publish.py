"""A finished training run's output directory made usable as a model: ``--output-dir runs/teacher`` ends with
``runs/teacher/config.json`` and the weights, so ``--teacher runs/teacher`` and ``--model runs/teacher`` work.

The files are hard links to the final checkpoint's (same bytes on disk, no second copy). The optimizer state only
serves resuming an unfinished run, so the finished checkpoint drops it (``--resume-from`` a finished model continues
with a fresh optimizer). A bucket keeps its checkpoint where Ray Train wrote it: its URI is the model.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from trainables import storage
from trainables.training.config import OPTIMIZER_STATE

PUBLISHED = "published.json"
"""Lists the files a publish put into the output directory and the checkpoint they came from (the next publish
removes exactly these)."""


def publish(checkpoint: str, root: str) -> str:
    """Link ``checkpoint``'s files into ``root`` (replacing an earlier publish) and drop its optimizer state;
    returns the location to use as the model: ``root`` when local, else ``checkpoint``."""
    if storage.is_uri(root) or storage.is_uri(checkpoint):
        return checkpoint
    source, target = Path(checkpoint), Path(root)
    (source / OPTIMIZER_STATE).unlink(missing_ok=True)
    _unpublish(target)
    names = sorted(p.name for p in source.iterdir() if p.is_file() and p.name != storage.COMPLETE)
    for name in names:
        _link(source / name, target / name)
    (target / PUBLISHED).write_text(json.dumps({"checkpoint": str(source), "files": names}, indent=1))
    return str(target)


def _unpublish(target: Path) -> None:
    record = target / PUBLISHED
    if not record.is_file():
        return
    for name in json.loads(record.read_text())["files"]:
        (target / name).unlink(missing_ok=True)
    record.unlink()


def _link(source: Path, target: Path) -> None:
    """A hard link (a copy where the filesystem has none, e.g. across devices)."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
