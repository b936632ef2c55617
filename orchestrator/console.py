"""What a command's console shows besides its own lines: the libraries' start-up notes, INFO logs, per-load weight
reports and progress bars are turned down unless ``--verbose`` (or ``DECOUPLE_VERBOSE=1``) asks for every log.

Each is turned down by the library's own setting, never by catching output or errors, so their warnings and errors
still show:

- transformers: verbosity ``error`` (its LOAD REPORT of missing head weights is a warning; `decouple eval` prints its
  own one-line note instead) and no progress bars (``TRANSFORMERS_VERBOSITY``, ``HF_HUB_DISABLE_PROGRESS_BARS``);
- MLflow, Optuna: their loggers at WARNING (``MLFLOW_LOGGING_LEVEL``; Optuna's verbosity, `quiet_optuna`);
- Ray: the driver's ``ray`` logger at WARNING (`ray.init`'s ``logging_level``), Ray Train's own logs at WARNING
  (``RunConfig.logging_config``; its per-report line, on a logger that config misses, by the training worker:
  `trainables.training.config`), Ray Data's at WARNING (the ``ray.data`` logger), the note that Ray enabled its
  default token authentication (its own logger at ERROR), and Tune's TensorBoard logger (and its hint to run
  TensorBoard) left out (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``; the sweep adds Tune's CSV and JSON loggers itself);
  Tune's console output off (``verbose=0``, with its older reporter, ``RAY_AIR_NEW_OUTPUT=0``: the newer one prints
  its experiment box and results path at any verbosity): the sweep writes one line per trial instead;
- Ray's driver, printing what its workers print: each worker's line as the command's own, without Ray's coloured
  ``(RayTrainWorker pid=...)`` prefix (``RAY_DISABLE_WORKER_LOG_PREFIX``) and as it came, never held back because
  another worker printed the same and summed up later with a coloured "[repeated 2x across cluster]"
  (``RAY_DEDUP_LOGS_ALLOW_REGEX``); the lines Ray still prefixes (the raylet's) without colour codes
  (``RAY_COLOR_PREFIX=0``); and the raylet's warning that more worker processes started than "the maximum expected
  startup concurrency" left out (``RAY_DEDUP_LOGS_SKIP_REGEX``): a sweep's actors (trial drivers, Ray Train's
  controllers and workers) outnumber a small machine's CPUs by design.

The settings are environment variables where the library reads one, so Ray workers started by the command inherit
them; `worker_env` hands them to workers on a cluster too. Ray reads the prefix switch and the two patterns when it
is imported: a command imports Ray after its console is set (`decouple` imports a command's libraries only when it
runs it), and a process that imported Ray before (a test calling `main`) keeps Ray's prefixes.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from trainables.training.config import VERBOSE_ENV  # the workers read it too

WORKER_POOL_WARNING = "worker processes have been started on node"
"""In the raylet's warning that more Python workers started than it expects to start at once."""
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DISABLE_WORKER_LOG_PREFIX": "1",
    "RAY_COLOR_PREFIX": "0",
    "RAY_DEDUP_LOGS_ALLOW_REGEX": f"(?s)^(?!.*{WORKER_POOL_WARNING})",  # every line but the one skipped below
    "RAY_DEDUP_LOGS_SKIP_REGEX": WORKER_POOL_WARNING,
}
"""Environment of a quiet command (a variable the user set keeps the user's value)."""
QUIET_LOGGERS = {
    "mlflow": logging.WARNING,
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
}
"""Driver loggers turned down in a quiet command (for libraries imported before the environment was set)."""


def verbose() -> bool:
    """Whether this process (a command, or a Ray worker it started) shows every log."""
    return bool(os.environ.get(VERBOSE_ENV))


@contextlib.contextmanager
def console(verbose_logs: bool) -> Iterator[None]:
    """A command's console for the duration of the block: quiet (see the module docstring) unless ``verbose_logs``
    or ``DECOUPLE_VERBOSE``. The environment and the logger levels are restored afterwards."""
    saved_env = {name: os.environ.get(name) for name in (VERBOSE_ENV, *QUIET_ENV)}
    saved_levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    if verbose_logs:
        os.environ[VERBOSE_ENV] = "1"
    hf = _HfLogging()
    try:
        if not verbose():
            for name, value in QUIET_ENV.items():
                os.environ.setdefault(name, value)
            for name, level in QUIET_LOGGERS.items():
                logging.getLogger(name).setLevel(level)
            hf.quiet()
        yield
    finally:
        hf.restore()
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _HfLogging:
    """transformers' verbosity and progress bars in this process, changed and put back."""

    def __init__(self) -> None:
        self._saved: tuple[int, bool] | None = None

    def quiet(self) -> None:
        from transformers.utils import logging as hf_logging

        self._saved = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

    def restore(self) -> None:
        if self._saved is None:
            return
        from transformers.utils import logging as hf_logging

        verbosity, bars = self._saved
        hf_logging.set_verbosity(verbosity)
        (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()


def worker_env() -> dict[str, str]:
    """The console settings of this process, for a Ray worker's runtime environment (on a cluster, workers do not
    inherit the driver's environment)."""
    return {name: os.environ[name] for name in (VERBOSE_ENV, *QUIET_ENV) if os.environ.get(name)}


def ray_logging_level() -> int:
    """`ray.init`'s ``logging_level``: INFO (Ray's default) with --verbose, else WARNING."""
    return logging.INFO if verbose() else logging.WARNING


def train_log_level() -> str:
    """Ray Train's ``LoggingConfig.log_level`` for its controller and workers ("Requesting resources", "Checkpoint
    successfully created", ... are INFO)."""
    return "INFO" if verbose() else "WARNING"


def quiet_optuna() -> None:
    """Optuna's logger at WARNING (call after importing ``optuna``, which sets it to INFO on first use): its "A new
    study created" line is left out."""
    if not verbose():
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)


def quiet_ray_data() -> None:
    """Ray Data's logger at WARNING (call after importing ``ray.data``, which configures it): its INFO lines and the
    progress it logs every few seconds when stdout is not a terminal are left out; on a terminal its progress bars
    stay."""
    if not verbose():
        logging.getLogger("ray.data").setLevel(logging.WARNING)
