"""Which budgets get series of their own in a process's metrics (pure).

A platform keeps tens of thousands of budgets; a scrape with series for each is large and slow,
and most would say nothing (idle budgets). Each process shows its ``limit`` most active budgets
by name and adds up the rest under ``OTHER``, so dashboards keep totals while the series stay
bounded whatever the number of budgets.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

# The label value of the series that add up the budgets not shown by name. Budget ids start with
# a letter or digit (quota_rules.limits), so it cannot be one.
OTHER = "_other"


def most_active(scores: Mapping[str, float], limit: int) -> frozenset[str]:
    """The ``limit`` budgets with the highest scores (ties: the smaller id, so the choice is
    stable between scrapes); all of them when there are no more than ``limit``."""
    if limit <= 0:
        return frozenset()
    if len(scores) <= limit:
        return frozenset(scores)
    return frozenset(b for _, b in heapq.nsmallest(limit, ((-s, b) for b, s in scores.items())))
