"""What a sweep was started with, kept as ``<sweep dir>/sweep.json``: written by the runner, read back by `--resume`
and `decouple report`."""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from orchestrator.errors import UserError
from trainables.storage import exists, join, read_record, write_text

RECORD = "sweep.json"
REFINE = "refine"
"""The Tune experiment of a sweep's dedicated students (``--refine``), inside the sweep's directory."""


@dataclass(frozen=True)
class SweepRecord:
    """What a sweep was started with (``<sweep dir>/sweep.json``): read back by `--resume` and `decouple report`."""

    sweep: str
    space: str
    source: str
    smoke: bool
    num_samples: int
    max_concurrent: int
    base: dict[str, Any]
    teacher: dict[str, Any]
    tracking_uri: str
    experiment: str
    parent_run_id: str
    metrics: list[str]
    modes: list[str]
    target: dict[str, int]
    student: dict[str, Any] | None = None
    """The any-split student's record (`orchestrator.sweep.any_split`), or None when every trial trains its own."""

    def save(self, folder: str) -> None:
        write_text(join(folder, RECORD), json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder: str) -> "SweepRecord":
        """The record of the sweep in ``folder``; `UserError` (one line naming the file and the fix) when there is none
        or it is not one `save` wrote."""
        path = join(str(folder), RECORD)
        if not exists(path):
            raise UserError(f"{folder}: no {RECORD}; pass the directory of a sweep started by `decouple sweep`")
        fix = f"{RECORD} is written by `decouple sweep`: restore it, or start the sweep again under a new --name"
        try:
            values = read_record(path, fix)
        except ValueError as err:
            raise UserError(str(err)) from None
        names = {f.name: f for f in fields(cls)}
        missing = [n for n, f in names.items() if f.default is MISSING and n not in values]
        unknown = sorted(set(values) - set(names))
        if missing or unknown:
            what = f"lacks {', '.join(missing)}" if missing else f"has unknown fields {', '.join(unknown)}"
            raise UserError(f"{path}: {what}; {fix}")
        return cls(**values)
