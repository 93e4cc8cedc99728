"""An agent's holding at the center, driven message by message over a real session stream:
grants are ledgered transfers, usage reports are cumulative and idempotent, releases go back to
main, impossible reports are refused, and the audit balances with the agent as a holder."""

from __future__ import annotations

from quota.v1 import common_pb2 as pb
from quota.v1 import session_pb2 as spb
from tests.helpers.calls import assert_balanced, audit, create, get
from tests.helpers.center import CenterThread, Client
from tests.helpers.session_stream import Stream, usage


async def test_grant_report_release_keep_the_books(
    center: CenterThread, client: Client, budget_id: str, agent_id: str
) -> None:
    await create(client, budget_id, 100_000, sub_buckets=2, max_slice=5_000)
    s = Stream(center.target, agent_id)
    try:
        welcome = await s.hello()
        assert welcome.lease_ms > 0
        assert welcome.heartbeat_ms > 0

        g = await s.grant(budget_id, "r1", usage(budget_id, 0), rate=1_000)
        assert g.code == pb.RESULT_CODE_OK, g.message
        assert 0 < g.amount <= 5_000
        assert g.holding.balance == g.amount
        assert g.holding.lease_ms == welcome.lease_ms
        assert g.holding.mode == pb.MODE_NORMAL
        report = await audit(client, budget_id)
        assert {h.holder: h.balance for h in report.holders}[f"agent:{agent_id}"] == g.amount
        await assert_balanced(client, budget_id)

        # Spent 300, returned 20, 50 reserved: the holding shrinks by the net.
        lease = await s.heartbeat(usage(budget_id, 3, consumed=300, returned=20, reserved=50))
        (h,) = lease.holdings
        assert h.balance == g.amount - 330
        assert (h.applied.consumed, h.applied.returned, h.applied.reserved) == (300, 20, 50)
        b = await get(client, budget_id)
        assert (b.consumed, b.reserved) == (280, 50)
        await assert_balanced(client, budget_id)

        # A repeated or older report changes nothing.
        again = await s.report(usage(budget_id, 3, consumed=300, returned=20, reserved=50))
        older = await s.report(usage(budget_id, 2, consumed=100))
        assert again.balance == older.balance == h.balance
        assert again.version == h.version

        # Releasing 1000 moves it back to main through a ledgered transfer.
        main_before = (await audit(client, budget_id)).main
        released = await s.report(usage(budget_id, 4, consumed=300, returned=20, reserved=50, released=1_000))
        assert released.balance == h.balance - 1_000
        assert released.version > h.version
        report = await assert_balanced(client, budget_id)
        assert report.main == main_before + 1_000
    finally:
        await s.close()


async def test_impossible_reports_are_refused_and_change_nothing(
    center: CenterThread, client: Client, budget_id: str, agent_id: str
) -> None:
    await create(client, budget_id, 10_000, sub_buckets=1, max_slice=1_000)
    s = Stream(center.target, agent_id)
    try:
        await s.hello()
        g = await s.grant(budget_id, "r1", usage(budget_id, 0), rate=100)
        h = (await s.heartbeat(usage(budget_id, 1, consumed=10))).holdings[0]

        await s.send(spb.AgentMessage(usage=usage(budget_id, 2, consumed=g.amount + 1)))
        err = (await s.expect("error")).error
        assert "more" in err.message, err.message
        assert agent_id in err.message, err.message
        await s.send(spb.AgentMessage(usage=usage(budget_id, 3, consumed=5)))
        err = (await s.expect("error")).error
        assert "backwards" in err.message, err.message
        await s.send(spb.AgentMessage(usage=usage("no-such-budget-x", 1, consumed=5)))
        err = (await s.expect("error")).error
        assert "NOT_FOUND" in err.message, err.message

        unchanged = await s.report(usage(budget_id, 1, consumed=10))
        assert (unchanged.balance, unchanged.version) == (h.balance, h.version)
        assert (await get(client, budget_id)).consumed == 10
        await assert_balanced(client, budget_id)
    finally:
        await s.close()


async def test_the_first_message_must_be_a_hello_with_a_valid_agent_id(center: CenterThread) -> None:
    s = Stream(center.target, "x")
    try:
        await s.send(spb.AgentMessage(heartbeat=spb.Heartbeat(sent_at_ms=1)))
        assert "Hello" in (await s.expect("error")).error.message
    finally:
        await s.close()
    s = Stream(center.target, "bad id {with braces}")
    try:
        await s.send(spb.AgentMessage(hello=spb.Hello(agent_id=s.agent_id)))
        assert "agent_id" in (await s.expect("error")).error.message
    finally:
        await s.close()
