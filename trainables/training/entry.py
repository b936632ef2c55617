"""The Ray Train workers' entry point. Nothing here imports torch: Ray Train's controller and the sweep's trial drivers
unpickle this function without training anything; the loop itself (`trainables.training.loop`) is imported on the
worker."""
from __future__ import annotations

import logging
import os

from trainables.storage import NO_SPACE
from trainables.training.config import VERBOSE_ENV


def train_loop_per_worker(config: dict) -> None:
    """Ray Train entry point; ``config["loop"]`` is a `LoopConfig`. The loop itself is imported here, on the worker."""
    from trainables.training.loop import run_worker

    _quiet_ray_train_reports()
    _no_traceback_for_a_full_disk()
    run_worker(config["loop"])


def _quiet_ray_train_reports() -> None:
    """Ray Train logs every report of a worker ("Reporting training result ...", the whole metrics dict) at INFO on a
    logger named after its source file, which its ``LoggingConfig`` does not reach; that logger is set to WARNING
    here unless --verbose. The epoch line our loop prints says the same in one line."""
    if os.environ.get(VERBOSE_ENV):
        return
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray: its reports may log elsewhere; a log setting is no reason to fail training
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


class _FullDisk(logging.Filter):
    """Leaves out Ray Train's "Error in training function" traceback when the function failed on a full disk: the
    command names what could not be written, and what was kept, in one line (`orchestrator.disk_full`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        last = (message.strip().splitlines() or [""])[-1]
        return not (message.startswith("Error in training function")
                    and any(os.strerror(code) in last for code in NO_SPACE))


def _no_traceback_for_a_full_disk() -> None:
    if os.environ.get(VERBOSE_ENV):
        return
    try:
        from ray.train.v2._internal import util
    except ImportError:  # another Ray: it may log elsewhere; a log setting is no reason to fail training
        return
    logging.getLogger(util.__name__).addFilter(_FullDisk())
