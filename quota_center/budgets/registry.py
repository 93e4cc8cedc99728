"""Budget definitions as the request path needs them, cached from PostgreSQL.

Only fields that never change after creation are served from the cache; the state
(active, paused, closed) is mirrored into the Redis buckets, and a changed
generation shows up as a STALE answer from Redis, which drops the cached entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from quota_center.errors import UnknownBudget
from quota_center.ledger.store import LedgerStore
from quota_rules.policy import Policy, from_json


@dataclass(frozen=True, slots=True)
class BudgetMeta:
    budget_id: str
    unit: str
    policy: Policy
    sub_buckets: int
    valid_from: datetime | None
    valid_until: datetime | None
    gen: int
    # When the current generation began, if a rebuild after a Redis loss began it: for a retention
    # window after that, the spend log is consulted before serving (quota_center/recovery/recall.py).
    rebuilt_at: datetime | None = None

    def outside_window(self, now: datetime) -> str | None:
        """Why the budget cannot be spent at ``now``, or None if it can."""
        if self.valid_from is not None and now < self.valid_from:
            return f"budget {self.budget_id} opens at {self.valid_from.isoformat()}"
        if self.valid_until is not None and now >= self.valid_until:
            return f"budget {self.budget_id} closed at {self.valid_until.isoformat()}"
        return None


class Registry:
    def __init__(self, ledger: LedgerStore) -> None:
        self._ledger = ledger
        self._cache: dict[str, BudgetMeta] = {}

    async def get(self, budget_id: str) -> BudgetMeta:
        meta = self._cache.get(budget_id)
        if meta is not None:
            return meta
        row = await self._ledger.get_budget(budget_id)
        if row is None:
            raise UnknownBudget(budget_id)
        meta = BudgetMeta(
            budget_id=row.budget_id,
            unit=row.unit,
            policy=from_json(row.policy),
            sub_buckets=row.sub_buckets,
            valid_from=row.valid_from,
            valid_until=row.valid_until,
            gen=row.redis_gen,
            rebuilt_at=await self._rebuilt_at(budget_id, row.redis_gen),
        )
        self._cache[budget_id] = meta
        return meta

    async def _rebuilt_at(self, budget_id: str, gen: int) -> datetime | None:
        return None if gen <= 1 else await self._ledger.generation_start(budget_id, gen)

    def forget(self, budget_id: str) -> None:
        self._cache.pop(budget_id, None)
