"""How a running sweep stops before its trials are done: SIGINT or SIGTERM, or a trial that found the disk full.

Either ends the Tune run the way Tune's own graceful stop does (SIGUSR1, which `Tuner.fit` always answers: no new
trial starts, the trials' actors are stopped, the experiment state is saved one last time, and unfinished trials are
left as they were for ``--resume``), and then raises the cause in the sweep's driver: `Interrupted` for a signal (a
second one raises at once), the trial's `DiskFull` for a full disk. The runner marks the sweep's MLflow runs.
Before, SIGINT was Tune's own stop and the sweep went on to summarise as if it had ended (exit 0); SIGTERM left the
trials' runs RUNNING; a trial on a full disk was retried, every later trial failed the same way, and the sweep ended
with exit 0 and no finished trial.

Tune's console lines about its stop ("Stop signal received", "Resume experiment with: Tuner.restore(...)",
"Trials did not complete") and its traceback of a trial that failed on a full disk are left out unless --verbose:
`decouple` says in one line what was kept and the command that resumes.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

from ray.tune import Callback

from orchestrator.console import verbose
from orchestrator.disk_full import no_space_error
from orchestrator.interrupt import Interrupted

_TUNE_SIGINT_ENV = "TUNE_DISABLE_SIGINT_HANDLER"
"""Set during the run, so SIGINT reaches `tune_stops_on_signals` instead of Tune's handler (which says nothing to
its caller)."""
_TUNE_STOP_LINES = ("Stop signal received", "Experiment has been interrupted", "Trials did not complete",
                    "Experiment state snapshotting failed")


def _stop_tune() -> None:
    """Ask the running `Tuner.fit` to end as its own Ctrl-C does (its SIGUSR1 handler, handled in the main thread)."""
    os.kill(os.getpid(), signal.SIGUSR1)


class StopOnFullDisk(Callback):
    """Ends the Tune run when a trial failed because a write ran out of room (every later trial would fail the same
    way, and a retry too), and raises that error from `Tuner.fit` once the run's state is saved."""

    def __init__(self) -> None:
        self.error: OSError | None = None

    def on_trial_recover(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._check(trial)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._check(trial)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Last of the run (after its state is saved and its actors stopped): the error reaches the sweep."""
        error, self.error = self.error, None
        if error is not None:
            raise error

    def _check(self, trial) -> None:
        if self.error is not None:
            return
        found = no_space_error(_trial_error(trial))
        if found is not None:
            self.error = found
            _stop_tune()

    def __getstate__(self) -> dict:
        return {"error": None}  # pickled into tuner.pkl with the run config: a restored run starts clean


def _trial_error(trial) -> BaseException:
    """The error Tune kept for ``trial`` (its pickled copy in the driver's trial folder), or a bare `Exception`."""
    import cloudpickle

    path = getattr(trial, "pickled_error_file", None)
    if not path or not os.path.isfile(path):
        return Exception()
    with open(path, "rb") as f:
        return cloudpickle.load(f)


class _QuietStop(logging.Filter):
    """Leaves out Tune's lines about a stop the sweep asked for, and its traceback of a trial that failed on a full
    disk (the sweep's own line names both)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith(_TUNE_STOP_LINES):
            return False
        error = record.exc_info[1] if record.exc_info else None
        return error is None or no_space_error(error) is None


@contextlib.contextmanager
def tune_stops_on_signals() -> Iterator[None]:
    """Around `Tuner.fit`: SIGINT or SIGTERM ends the Tune run (see the module doc) and then raises `Interrupted`
    for the first signal; a second signal raises at once. Tune's lines about the stop are left out unless
    --verbose."""
    received: list[tuple[int, float]] = []  # the first signal and when it came

    def stop(signum: int, _frame) -> None:
        if received:
            raise Interrupted(*received[0])
        received.append((signum, time.time()))
        _stop_tune()

    previous_env = os.environ.get(_TUNE_SIGINT_ENV)
    os.environ[_TUNE_SIGINT_ENV] = "1"
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    quiet = _QuietStop()
    loggers = [logging.getLogger(name) for name in ("ray.tune.tune", "ray.tune.execution.tune_controller")]
    for logger in loggers if not verbose() else ():
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if previous_env is None:
            os.environ.pop(_TUNE_SIGINT_ENV, None)
        else:
            os.environ[_TUNE_SIGINT_ENV] = previous_env
        for logger in loggers:
            logger.removeFilter(quiet)
    if received:
        raise Interrupted(*received[0])
