"""The numbers a drain is judged by: oversell, leftover, false refusals, center calls per thousand.

One arithmetic for the simulation (``loadtest.simulate``), the strategy comparison
(``loadtest.strategies``) and the load-test check (``loadtest.check``), so that their tables
mean the same thing.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence


def left(total: int, consumed: int) -> int:
    """What a budget with nothing reserved or in doubt can still issue; negative when oversold."""
    return total - consumed


def oversell(total: int, consumed: int) -> int:
    """What was consumed beyond the total."""
    return max(0, -left(total, consumed))


def leftover(total: int, consumed: int) -> int:
    """What was never issued."""
    return max(0, left(total, consumed))


def per_thousand(calls: int | float, deductions: int) -> float:
    """Calls per thousand deductions."""
    return 1000 * calls / max(1, deductions)


class SurelyLeft:
    """What was surely left of ``total`` at a moment, from the successes' send times.

    When a refusal was decided, at most the successes sent before its answer came back had been
    consumed, so at least ``total`` minus those was left: a refusal of no more than that was false.
    The bound never calls an honest refusal false. ``successes``: (sent, amount) of each.
    """

    def __init__(self, total: int, successes: Iterable[tuple[float, int]]) -> None:
        sends = sorted(successes)
        self._total = total
        self._times = [sent for sent, _ in sends]
        self._taken = list(itertools.accumulate((amount for _, amount in sends), initial=0))

    def at(self, moment: float) -> int:
        """``total`` minus every success sent before ``moment``."""
        return self._total - self._taken[bisect.bisect_left(self._times, moment)]


def table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Right-aligned columns, the head first."""
    lines = [head, *rows]
    widths = [max(len(x) for x in col) for col in zip(*lines, strict=True)]
    return "\n".join("  ".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True)) for row in lines)
