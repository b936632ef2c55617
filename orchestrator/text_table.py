"""Console tables (`decouple bench`, the sweep's Pareto table): columns right-aligned, two spaces apart."""
from __future__ import annotations

from collections.abc import Sequence


def aligned(lines: Sequence[Sequence[str]]) -> list[str]:
    """``lines`` of cells, the titles first, as text lines: each column right-aligned to its widest cell."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return ["  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines]
