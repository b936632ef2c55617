"""One console line per trial of a sweep, in place of Tune's status and result tables on a quiet console.

    [sweep] trial 2/7 79072ae7 split=6: accuracy 71.33 (drop 3.67), speedup 1.52x, 4m12s

A trial that fails gets one line naming its error file. With ``--verbose`` Tune's own tables are shown as well.
"""
from __future__ import annotations

import time
from typing import Any, TextIO

from ray.tune import Callback


class TrialLines(Callback):
    """Writes a trial's line to ``stream`` (stdout when None) when it starts and ends; ``total`` is the sweep's trial
    budget, counted from ``done`` trials that an earlier run of a resumed sweep already finished."""

    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None) -> None:
        self.total, self.done, self.stream = total, done, stream
        self._started: dict[str, float] = {}

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._started[trial.trial_id] = time.monotonic()

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.done += 1
        self._say(f"{self._head(trial)}: {result_text(trial.last_result or {})}{self._took(trial)}")

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.done += 1
        where = getattr(trial, "error_file", None) or trial.path
        self._say(f"{self._head(trial)}: failed{self._took(trial)}; its error: {where}")

    def _head(self, trial) -> str:
        config = " ".join(f"{k}={v}" for k, v in (trial.config or {}).items())
        return f"[sweep] trial {self.done}/{self.total} {trial.trial_id}" + (f" {config}" if config else "")

    def _took(self, trial) -> str:
        started = self._started.pop(trial.trial_id, None)
        return "" if started is None else f", {duration(time.monotonic() - started)}"

    def _say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


def result_text(result: dict[str, Any]) -> str:
    """``accuracy 71.33 (drop 3.67), speedup 1.52x`` from a trial's last result; ``?`` marks a speedup its own
    reliability check doubts (see `trainables.speed.reliability`)."""
    parts = []
    if "accuracy" in result:
        drop = result.get("accuracy_drop")
        parts.append(f"accuracy {result['accuracy']:.2f}" + ("" if drop is None else f" (drop {drop:.2f})"))
    if "speedup" in result:
        doubt = "?" if result.get("speed_reliable") == 0 else ""
        parts.append(f"speedup {result['speedup']:.2f}x{doubt}")
    return ", ".join(parts) or "finished (no accuracy reported)"


def duration(seconds: float) -> str:
    """``4m12s``, ``38s``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
