"""Which labels a pair source may use: a known set, never one read off the data.

A label set comes from, in this order: the ``--labels`` option; what the source declares (a ``datasets``
``ClassLabel``, the numeric columns of the MRPC and QQP layouts); else the known set of the task that covers most of
the source's labelled rows (0/1 for numeric labels, the GLUE entailment sets for named ones). A row whose label is
outside the set is a bad row — skipped with a line naming the value, never a new class — and a source whose labels
mostly fall outside every known set is refused in one line asking for ``--labels``. Torch-free, so option classes can
check ``--labels`` when they are built.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from trainables.data.errors import DataError

MISSING = ("", "-")
"""Label texts that mean "no label" (an unlabelled row, reported as missing rather than wrong)."""


@dataclass(frozen=True)
class LabelSet:
    """The classes of a pair task: ``names[i]`` is class ``i``, written ``written[i]`` in the source."""

    names: tuple[str, ...]
    written: tuple[str, ...]
    """How the source writes each class: the names themselves, or class indices ("0", "1") for numeric layouts."""
    origin: str
    """Where the set came from, for messages, e.g. ``--labels`` or ``MRPC's Quality column``."""

    def index(self, text: str) -> int | None:
        """The class of a label as the source writes it, or None when it is not in the set."""
        return self.written.index(text) if text in self.written else None

    def describe(self) -> str:
        """``0, 1 (MRPC's Quality column: 0 = not_paraphrase, 1 = paraphrase)`` or ``'a', 'b' (--labels)``."""
        if self.written == self.names:
            return f"{', '.join(repr(n) for n in self.names)} ({self.origin})"
        meaning = ", ".join(f"{w} = {n}" for w, n in zip(self.written, self.names))
        return f"{', '.join(self.written)} ({self.origin}: {meaning})"


def given(names: tuple[str, ...]) -> LabelSet:
    return LabelSet(names, names, "--labels")


def declared(names: tuple[str, ...], origin: str) -> LabelSet:
    """A set whose source writes class indices (a ClassLabel, MRPC's Quality column)."""
    return LabelSet(tuple(names), tuple(str(i) for i in range(len(names))), origin)


_OTHERS = "--labels names another set"
KNOWN = (
    LabelSet(("0", "1"), ("0", "1"), f"the default for numeric labels; {_OTHERS}"),
    LabelSet(("entailment", "not_entailment"), ("entailment", "not_entailment"),
             f"the GLUE RTE/QNLI labels; {_OTHERS}"),
    LabelSet(("entailment", "neutral", "contradiction"), ("entailment", "neutral", "contradiction"),
             f"the GLUE MNLI labels; {_OTHERS}"),
)
"""The task's own sets, in GLUE's class order, tried when a source declares none."""


def is_unlabelled(text: str) -> bool:
    """An empty label, ``-`` (SNLI) or a negative index (GLUE test splits use -1)."""
    return text in MISSING or (text.startswith("-") and text[1:].isdigit())


def known_set(labels: list[str], source: str) -> LabelSet:
    """The known set covering most of ``labels`` (one text per row); `DataError` naming the labels when even the
    best covers under half of the labelled rows (the source uses a set of its own: it must be given)."""
    counts = Counter(label for label in labels if not is_unlabelled(label))
    if not counts:
        return KNOWN[0]
    best = max(KNOWN, key=lambda s: sum(counts[w] for w in s.written))  # first of equals: max keeps the earliest
    covered = sum(counts[w] for w in best.written)
    if 2 * covered < sum(counts.values()):
        seen = [label for label, _ in counts.most_common(6)]
        more = ", ..." if len(counts) > len(seen) else ""
        raise DataError(f"{source}: labels {', '.join(repr(s) for s in seen)}{more} are not a known label set "
                         f"(0/1, entailment/not_entailment, entailment/neutral/contradiction); pass every label "
                         f"of the file in class order, e.g. --labels {','.join(sorted(counts)[:3])}")
    return best


def parse_labels(text: str | None, field_name: str = "labels") -> tuple[str, ...] | None:
    """``"no,yes"`` -> ``("no", "yes")``; None stays None. `ValueError` naming ``field_name`` when fewer than two
    distinct, non-empty labels are given."""
    if text is None:
        return None
    names = tuple(part.strip() for part in str(text).split(","))
    if len(names) < 2 or any(not n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"{field_name}={text!r}: give two or more distinct labels, comma-separated in class order, "
                         "e.g. no,yes")
    return names
