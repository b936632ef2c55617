"""How loaders report bad input: a fatal ``DataError`` or per-example lines in a ``LoadReport``.

A whole source that cannot be read (missing file, malformed JSON, unknown layout) raises ``DataError`` with one
line naming the file and the fix. A single bad example is skipped, never silently: the loader adds one line naming
the file, the example id and the field to ``LoadReport.problems`` (and logs it at WARNING), and the report counts
kept and skipped examples. Repairs that keep the example (a truncated question) are reported the same way but
counted as warnings, not skips.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

_log = logging.getLogger(__name__)


class DataError(ValueError):
    """The whole source is unusable; the message is one line naming the file (or dataset) and the fix."""


def problem_line(source: str, example_id: str, field_name: str, detail: str) -> str:
    """One problem line, e.g. ``squad.json: example 56be…: field 'question' is empty; write a question``."""
    return f"{source}: example {example_id}: field '{field_name}' {detail}"


@dataclass
class LoadReport:
    """What a loader kept and skipped, with one line per problem."""

    source: str
    """Short name of the file or dataset the examples came from (as used in every problem line)."""
    kept: int = 0
    """Examples returned to the caller."""
    skipped: int = 0
    """Examples dropped because of a problem; each has a line in ``problems``."""
    problems: list[str] = field(default_factory=list)
    """One line per skipped or repaired example, in input order; one line for a whole kind of repair (questions
    cut to the model's length)."""
    warnings: int = 0
    """Examples kept after a repair (e.g. a truncated question); each is named or counted in ``problems``."""

    def skip(self, line: str) -> None:
        """Record a skipped example (side effect: logs ``line`` at WARNING)."""
        self.skipped += 1
        self._add(line)

    def warn(self, line: str, examples: int = 1) -> None:
        """Record kept-but-repaired examples, ``examples`` of them sharing the one ``line`` (side effect: logs it at
        WARNING)."""
        self.warnings += examples
        self._add(line)

    def note(self, line: str) -> None:
        """Record a problem that drops no example (e.g. an article with no paragraphs)."""
        self._add(line)

    def summary(self) -> str:
        """One line, e.g. ``squad-v1.1-dev-part-a.json: kept 5397, skipped 0``."""
        text = f"{self.source}: kept {self.kept}, skipped {self.skipped}"
        if self.warnings:
            text += f", repaired {self.warnings}"
        return text

    def _add(self, line: str) -> None:
        self.problems.append(line)
        _log.warning(line)


@contextlib.contextmanager
def problems_unlogged() -> Iterator[None]:
    """Record problem lines without logging them for the duration: for a check whose loaders run again where the
    lines are reported (the driver's look at the data before Ray Train workers load it and report)."""
    level = _log.level
    _log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        _log.setLevel(level)
