"""Stopping a command with SIGINT (Ctrl-C) or SIGTERM: the same clean path for both.

A command that runs on Ray takes over SIGTERM once Ray has started (`orchestrator.ray_session`): left to the
defaults, Ray's driver answered it with a native stack dump and exit 134. Both signals now raise `Interrupted` (a
`KeyboardInterrupt`) in the command, so what holds resources lets go on the way out (an MLflow run is marked KILLED,
Ray is shut down), and `decouple` ends with one line saying what was kept and how to resume, and the conventional
exit code: 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
"""
from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """The command was asked to stop by ``signum``, at ``at`` (seconds since the epoch; now when not given)."""

    def __init__(self, signum: int, at: float | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.at = time.time() if at is None else at

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_received: list[int] = []
"""The signals `_raise` took, in order: Ray re-raises an interrupt that reached it while it waited as a plain
KeyboardInterrupt, which no longer says which signal it was."""


def as_interrupted(err: KeyboardInterrupt) -> Interrupted:
    """``err`` as `Interrupted`: the signal it carries, else the last one taken, else SIGINT (Python's own
    KeyboardInterrupt)."""
    if isinstance(err, Interrupted):
        return err
    return Interrupted(_received[-1] if _received else signal.SIGINT)


def _raise(signum: int, _frame) -> None:
    _received.append(signum)
    raise Interrupted(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` inside the block (the main thread only; elsewhere nothing changes);
    the previous handlers come back after it."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


Kept = Callable[[], str]
"""What a command says it kept when interrupted, and how to resume it: one phrase, asked after the stop."""
