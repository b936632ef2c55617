"""A disk that filled mid-run, found in whatever error reached the command.

The write that ran out of room may have failed in the driver (a cache shard, a record), in a Ray Train worker (an
epoch checkpoint: the error comes back inside Ray's `WorkerGroupError`), or in MLflow's sqlite store (SQLite's
"database or disk is full", wrapped by SQLAlchemy and MLflow). `disk_full` looks through the wrappers for it, so
`decouple` ends with one line naming what could not be written instead of the library's traceback. Our own writes
are atomic (`trainables.storage.staged`, `staged_copy`): what they could not finish is not left under its name.
"""
from __future__ import annotations

from collections.abc import Iterator

from trainables.storage import NO_SPACE

SQLITE_FULL = "database or disk is full"
"""SQLite's text for SQLITE_FULL; it names no file."""


def no_space_error(err: BaseException) -> OSError | None:
    """The write that ran out of room inside ``err`` (``err`` itself, or an error it wraps), preferring one that
    names its file; None when there is none."""
    found = [e for e in _wrapped(err) if isinstance(e, OSError) and e.errno in NO_SPACE]
    return next((e for e in found if e.filename), found[0] if found else None)


def disk_full(err: BaseException) -> str | None:
    """What could not be written, as a phrase, when ``err`` or an error it wraps ran out of room; else None."""
    found = no_space_error(err)
    if found is not None:
        return f"no space left on the device to write {found.filename}" if found.filename else \
            "no space left on the device"
    if any(SQLITE_FULL in (str(e).splitlines() or [""])[0] for e in _wrapped(err)):
        return f"no space left on the device to write the MLflow store (sqlite: {SQLITE_FULL})"
    return None


def _wrapped(err: BaseException) -> Iterator[BaseException]:
    """``err`` and every error inside it: Python's chain, Ray's ``cause``, SQLAlchemy's ``orig`` and the failures of
    a Ray Train worker group."""
    seen, stack = set(), [err]
    while stack:
        e = stack.pop(0)
        if e is None or id(e) in seen or not isinstance(e, BaseException):
            continue
        seen.add(id(e))
        yield e
        failures = getattr(e, "worker_failures", None)
        stack += [e.__cause__, e.__context__, getattr(e, "cause", None), getattr(e, "orig", None),
                  *(failures.values() if isinstance(failures, dict) else ())]
