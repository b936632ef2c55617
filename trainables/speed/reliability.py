"""Whether a measured speedup can be reported as a fact.

A speedup is the ratio of two medians timed round-robin on one machine. Two things make it unreliable, and both can
be seen from the measurement itself:

- **above its bound**: the FLOPs bound is the most that removing the lower layers' joint work can give; a measured
  speedup above it (beyond `BOUND_TOLERANCE`, the spread of repeated timings on a quiet machine) says the baseline
  was slowed by something else: other processes, frequency scaling, a cold cache;
- **load above the cores**: the machine's 1-minute load average, read before and after the timing, above its CPU
  count means processes queued for the cores while the paths ran, and paths of many small operations suffer most.

Such a figure stays in the results, marked: ``speed_reliable`` 0 and the ``speed_load`` it was measured under.
"""
from __future__ import annotations

import os

BOUND_TOLERANCE = 0.05
"""A speedup up to 5 % above its bound is timing noise, not a sign of a disturbed measurement."""
UNRELIABLE_MARK = "?"
"""Follows an unreliable figure in a table; a footnote under the table says why."""


def load_average() -> float | None:
    """The machine's 1-minute load average now; None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def cores() -> int:
    """CPUs the machine has (what its load average is compared with)."""
    return os.cpu_count() or 1


def unreliable_reasons(speedups: dict[str, tuple[float, float]], load: float | None, cpus: int) -> list[str]:
    """Why the figures of one measurement are unreliable (empty when they are not). ``speedups`` maps a path's name
    to (measured speedup, its FLOPs bound); ``load`` is the highest load average seen during the timing."""
    reasons = [f"{name} speedup {measured:.2f} above its FLOPs bound {bound:.2f}"
               for name, (measured, bound) in speedups.items() if measured > bound * (1 + BOUND_TOLERANCE)]
    if load is not None and load > cpus:
        reasons.append(f"load average {load:.1f} above the {cpus} cores")
    return reasons


def is_reliable(row: dict) -> bool:
    """Whether a row's speed figures were marked reliable (rows from before the mark existed count as reliable)."""
    return bool(row.get("speed_reliable", 1.0))
