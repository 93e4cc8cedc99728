"""Plain values exchanged with the ledger store.

asyncpg Records stop at this module: every row is converted into a frozen dataclass here, so the
rest of the service is typed end to end.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

BUDGET_STATES: Final = frozenset({"active", "paused", "closed"})

# Kinds whose rows move nothing and are skipped by balance sums. They are never fenced by the
# generation: a sweeper must be able to abort an old generation's transfer at any time.
MARKER_KINDS: Final = frozenset({"abort", "state", "rebuild"})

# A marker row recorded with this generation is stored with the budget's current one.
CURRENT_GEN: Final = 0

PolicyValue = int | str


class RecordOutcome(enum.Enum):
    """What `LedgerStore.record` found for a transfer id."""

    COMMITTED = "committed"  # this call inserted the row
    ALREADY_COMMITTED = "already_committed"  # an identical row was there before
    ABORTED = "aborted"  # the id was aborted (by a sweeper) before this write
    CONFLICT = "conflict"  # a different movement already uses this id
    STALE = "stale"  # no row for the id, and the entry's generation is not the budget's current one


@dataclass(frozen=True, slots=True)
class BudgetRow:
    budget_id: str
    unit: str
    total: int
    state: str
    valid_from: datetime | None
    valid_until: datetime | None
    policy: dict[str, PolicyValue]
    sub_buckets: int
    created_at: datetime
    updated_at: datetime
    # Total at creation: a retried create is compared with this, since top-ups change `total`.
    initial_total: int
    # Generation of the budget's Redis buckets; bumped by every rebuild after a Redis loss.
    redis_gen: int

    def same_definition(
        self,
        *,
        unit: str,
        total: int,
        valid_from: datetime | None,
        valid_until: datetime | None,
        policy: dict[str, PolicyValue],
        sub_buckets: int,
    ) -> bool:
        """True if a create with these fields is a retry of the create that made this budget."""
        return (
            self.unit == unit
            and self.initial_total == total
            and self.valid_from == valid_from
            and self.valid_until == valid_until
            and self.policy == policy
            and self.sub_buckets == sub_buckets
        )


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One movement to write: `amount` goes from `from_holder` to `to_holder` in generation `gen`.

    `gen` must be the budget's current `redis_gen`, or `record` answers STALE; marker kinds
    ('abort', 'state', 'rebuild') are exempt and may pass CURRENT_GEN (0).
    """

    budget_id: str
    transfer_id: str
    kind: str
    from_holder: str
    to_holder: str
    amount: int
    actor: str
    reason: str
    gen: int

    def same_movement(self, other: LedgerEntry) -> bool:
        """Identity for idempotency: who wrote it and why do not matter, what moved does."""
        return (
            self.budget_id == other.budget_id
            and self.kind == other.kind
            and self.from_holder == other.from_holder
            and self.to_holder == other.to_holder
            and self.amount == other.amount
            and self.gen == other.gen
        )


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """A committed ledger row, for audit and debugging."""

    seq: int
    entry: LedgerEntry
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Rebuild:
    """Outcome of `bump_generation`: what a rebuilt main bucket must hold, in which generation."""

    budget_id: str
    gen: int
    main: int
    state: str
    bumped: bool  # False if another caller had already moved past the expected generation


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """Cross-check of one budget: `total` must equal `external_in` (creates plus top-ups)."""

    budget_id: str
    total: int
    external_in: int
    rows: int
    last_seq: int


def budget_from_record(rec: Any) -> BudgetRow:
    raw_policy = rec["policy"]
    policy = json.loads(raw_policy) if isinstance(raw_policy, str) else dict(raw_policy)
    return BudgetRow(
        budget_id=str(rec["budget_id"]),
        unit=str(rec["unit"]),
        total=int(rec["total"]),
        state=str(rec["state"]),
        valid_from=rec["valid_from"],
        valid_until=rec["valid_until"],
        policy=policy,
        sub_buckets=int(rec["sub_buckets"]),
        created_at=rec["created_at"],
        updated_at=rec["updated_at"],
        initial_total=int(rec["initial_total"]),
        redis_gen=int(rec["redis_gen"]),
    )


def entry_from_record(rec: Any) -> LedgerEntry:
    return LedgerEntry(
        budget_id=str(rec["budget_id"]),
        transfer_id=str(rec["transfer_id"]),
        kind=str(rec["kind"]),
        from_holder=str(rec["from_holder"]),
        to_holder=str(rec["to_holder"]),
        amount=int(rec["amount"]),
        actor=str(rec["actor"]),
        reason=str(rec["reason"]),
        gen=int(rec["gen"]),
    )


def row_from_record(rec: Any) -> LedgerRow:
    return LedgerRow(seq=int(rec["seq"]), entry=entry_from_record(rec), created_at=rec["created_at"])
