"""The center's per-budget series: the most active budgets by name, the rest added up.

The budgets shown are those this center looks after (its active set, ``track``), never one a
one-off audit read (an operator's audit of every budget would otherwise leave a series for each).
Of these, the ``limit`` (QUOTA_CENTER_METRICS_BUDGETS) that consumed most lately (a sum decaying
with a half-life of ACTIVE_HALF_LIFE_S, so the choice does not flip with every pause) get series
labelled with their id; the others are added up under ``budget="_other"`` (quota_rules.series). A closed budget
is dropped at once (``forget``); one that left the active set at the next pass of the gauges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from quota_rules.rates import DecayingRate, decayed, observe_spread
from quota_rules.series import OTHER, most_active

MODES = ("normal", "scarce", "central")
# A closed budget may still be in an active set read just before it closed: not tracked again
# for this long (longer than a pass of the gauges).
CLOSED_FOR_S = 300.0
ACTIVE_HALF_LIFE_S = 600.0


@dataclass(slots=True)
class _Budget:
    total: int = 0
    remaining: int = 0
    consumed: int = 0
    in_doubt: int = 0
    balanced: bool = True
    mode: str = ""
    consumed_lately: DecayingRate = field(default_factory=DecayingRate)
    seen_at: float | None = None


class BudgetSeries(Collector):
    def __init__(self, limit: int = 100, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._budgets: dict[str, _Budget] = {}
        self._closed: dict[str, float] = {}  # budget -> when it was closed (clock)

    def track(self, budget_ids: Iterable[str]) -> None:
        """The budgets this center looks after now: the others' series go."""
        now = self.clock()
        self._closed = {b: at for b, at in self._closed.items() if now - at < CLOSED_FOR_S}
        wanted = set(budget_ids).difference(self._closed)
        for budget_id in set(self._budgets) - wanted:
            del self._budgets[budget_id]
        for budget_id in wanted:
            self._budgets.setdefault(budget_id, _Budget())

    def forget(self, budget_id: str) -> None:
        """A closed budget: its series go from the next scrape."""
        self._budgets.pop(budget_id, None)
        self._closed[budget_id] = self.clock()

    def observe(
        self, budget_id: str, *, total: int, remaining: int, consumed: int, in_doubt: int, balanced: bool
    ) -> None:
        """An audit's numbers; ignored for a budget not tracked."""
        b = self._budgets.get(budget_id)
        if b is None:
            return
        now = self.clock()
        if b.seen_at is not None:
            grew = max(0, consumed - b.consumed)
            b.consumed_lately = observe_spread(b.consumed_lately, grew, b.seen_at, now, ACTIVE_HALF_LIFE_S)
        b.total, b.remaining, b.consumed, b.in_doubt, b.balanced = (
            total,
            remaining,
            consumed,
            in_doubt,
            balanced,
        )
        b.seen_at = now

    def observe_mode(self, budget_id: str, mode: str) -> None:
        b = self._budgets.get(budget_id)
        if b is not None:
            b.mode = mode

    def collect(self) -> Iterator[Metric]:
        seen = {k: v for k, v in list(self._budgets.items()) if v.seen_at is not None}
        now = self.clock()
        lately = {k: decayed(v.consumed_lately, now, ACTIVE_HALF_LIFE_S).mass for k, v in seen.items()}
        shown = most_active(lately, self.limit)
        families = {
            "total": GaugeMetricFamily(
                "quota_budget_size",
                "A budget's total (quota_budget_total would read as a counter).",
                labels=["budget"],
            ),
            "remaining": GaugeMetricFamily(
                "quota_budget_remaining",
                "What a budget can still issue: total - consumed - reserved - in doubt.",
                labels=["budget"],
            ),
            "consumed": GaugeMetricFamily(
                "quota_budget_consumed",
                "Consumed units of a budget (deducted - returned).",
                labels=["budget"],
            ),
            "in_doubt": GaugeMetricFamily(
                "quota_budget_in_doubt",
                "Units of a budget held by holders whose state is unknown.",
                labels=["budget"],
            ),
        }
        mode = GaugeMetricFamily(
            "quota_budget_mode",
            "Allocation mode of a budget, one series per mode set to 1 for the current one.",
            labels=["budget", "mode"],
        )
        rest = dict.fromkeys(families, 0)
        for budget_id, b in seen.items():
            values = {
                "total": b.total,
                "remaining": b.remaining,
                "consumed": b.consumed,
                "in_doubt": b.in_doubt,
            }
            if budget_id not in shown:
                for name, value in values.items():
                    rest[name] += value
                continue
            for name, value in values.items():
                families[name].add_metric([budget_id], value)
            if b.mode:
                for m in MODES:
                    mode.add_metric([budget_id, m], 1 if m == b.mode else 0)
        if len(seen) > len(shown):
            for name, value in rest.items():
                families[name].add_metric([OTHER], value)
        yield from families.values()
        yield mode
        yield GaugeMetricFamily(
            "quota_budgets_tracked",
            "Budgets this center looks after (its active set); at most QUOTA_CENTER_METRICS_BUDGETS"
            f' of them have series of their own, the rest are added up under budget="{OTHER}".',
            value=len(self._budgets),
        )
        yield GaugeMetricFamily(
            "quota_audit_unbalanced_budgets",
            "Budgets this center looks after whose last audit found a mismatch between Redis and the ledger.",
            value=sum(1 for b in seen.values() if not b.balanced),
        )
