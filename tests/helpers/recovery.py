"""What the recovery tests share: the acknowledged effects of a workload, and settling."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from quota.v1 import admin_pb2 as apb
from quota_center.ledger.spend_log import DoubtRow
from tests.helpers.calls import assert_balanced
from tests.helpers.center import CenterThread, Client


@dataclass
class Acknowledged:
    """Deductions and returns that got OK, by request id: what consumption must come to."""

    deductions: dict[str, int] = field(default_factory=dict)
    returns: dict[str, tuple[str, int]] = field(default_factory=dict)
    _returned: dict[str, int] = field(default_factory=dict)
    _progress: asyncio.Event = field(default_factory=asyncio.Event)

    def deducted(self, request_id: str, amount: int) -> None:
        self.deductions[request_id] = amount
        self._progress.set()

    def returned(self, request_id: str, deduction_id: str, amount: int) -> None:
        self.returns[request_id] = (deduction_id, amount)
        self._returned[deduction_id] = self._returned.get(deduction_id, 0) + amount
        self._progress.set()

    def refundable(self, deduction_id: str) -> int:
        return self.deductions[deduction_id] - self._returned.get(deduction_id, 0)

    @property
    def count(self) -> int:
        return len(self.deductions) + len(self.returns)

    async def reach(self, count: int, timeout_s: float = 20) -> None:
        """Wait until ``count`` operations in all were acknowledged."""
        async with asyncio.timeout(timeout_s):
            while self.count < count:
                self._progress.clear()
                await self._progress.wait()

    @property
    def net(self) -> int:
        return sum(self.deductions.values()) - sum(self._returned.values())


def doubt_holders(center: CenterThread, budget_id: str) -> list[DoubtRow]:
    """The budget's in-doubt holders, straight from the ledger."""
    assert center.center is not None
    ledger = center.center.ledger
    rows: list[DoubtRow] = center.call(lambda: ledger.doubt_holders(budget_id))
    return rows


def settle(center: CenterThread, budget_id: str) -> int:
    """One settlement pass, as the sweeper would run it; how many holders stay open."""
    assert center.center is not None
    assert center.center.settlement is not None
    settlement = center.center.settlement
    left: int = center.call(lambda: settlement.settle_budget(budget_id))
    return left


async def settled(
    center: CenterThread, client: Client, budget_id: str, timeout_s: float = 10
) -> apb.BudgetAudit:
    """Wait until nothing of the budget is in doubt (settling meanwhile); the balanced audit."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = await assert_balanced(client, budget_id)
        if report.in_doubt == 0 and all(r.released is not None for r in doubt_holders(center, budget_id)):
            return report
        assert time.monotonic() < deadline, f"still in doubt: {report}"
        await asyncio.to_thread(settle, center, budget_id)
        await asyncio.sleep(0.05)
