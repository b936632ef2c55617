"""Progress of a long step on a terminal: one line on stderr, rewritten in place, with the count, the rate and the
time left; on a stream that is not a terminal (a log file, a pipe, a test) and in ``--json`` use it writes nothing.

    with Progress("eval", total=len(features), unit="rows", enabled=not args.json) as progress:
        evaluate_qa(..., progress=progress.advance)
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

REFRESH_S = 0.5
"""Least seconds between two rewrites of the line (the last one is always written)."""


class Progress:
    """A counter of ``total`` units that draws itself on ``stream`` when that is a terminal and ``enabled``."""

    def __init__(self, what: str, total: int, unit: str, *, enabled: bool = True, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.stream = sys.stderr if stream is None else stream
        self.shown = enabled and total > 0 and self.stream.isatty()
        self.clock = clock
        self.done = 0
        self.started = self.drawn = clock()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, units: int) -> None:
        """Count ``units`` more done; redraw at most every `REFRESH_S` seconds."""
        self.done += units
        now = self.clock()
        if self.shown and now - self.drawn >= REFRESH_S and self.done < self.total:
            self.drawn = now
            self._draw(self.line(now) + " " * 4, end="")  # spaces cover a longer line drawn before

    def close(self) -> None:
        """The final line: the count, the seconds it took and the rate (nothing when not shown)."""
        if self.shown:
            self.shown = False
            self._draw(self.line(self.clock()), end="\n")

    def line(self, now: float) -> str:
        """``eval: 640/1,920 rows, 212 rows/s, 6 s left`` while running; ``... in 9 s`` once all are done."""
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        head = f"{self.what}: {self.done:,}/{self.total:,} {self.unit}, {_rate(rate)} {self.unit}/s"
        if self.done >= self.total:
            return f"{head}, in {_duration(elapsed)}"
        left = (self.total - self.done) / rate if rate > 0 else None
        return f"{head}, {_duration(left) if left is not None else '?'} left"

    def _draw(self, text: str, end: str) -> None:
        print(f"\r{text}", end=end, file=self.stream, flush=True)


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
