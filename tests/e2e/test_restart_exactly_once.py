"""Exactly once through a SIGKILL of an agent (docs/agents.md, "The agent's journal and record log"):
requests its slice served before the kill, retried at the restarted agent, get their original
answers (EXISTS) or CONFLICT, refunds stay bounded, and the center counts each one once."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
import uuid
from pathlib import Path

from devstack import free_port
from quota.v1 import common_pb2 as pb
from tests.helpers.calls import assert_balanced, create, get
from tests.helpers.center import CenterThread, Client
from tests.helpers.regions import OK, agent_process, eventually, held_here

EXISTS = pb.RESULT_CODE_EXISTS
CONFLICT = pb.RESULT_CODE_CONFLICT
EXCEEDS_DEDUCTED = pb.RESULT_CODE_EXCEEDS_DEDUCTED


def _served_locally(metrics_port: int) -> float:
    """``quota_region_agent_served_total{where="local"}`` of the agent process, summed over methods."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("quota_region_agent_served_total{") and 'where="local"' in line
    )


async def _deduct(c: Client, budget_id: str, rid: str, amount: int) -> pb.DeductResponse:
    return await c.quota.Deduct(pb.DeductRequest(budget_id=budget_id, request_id=rid, amount=amount))


async def _return(c: Client, budget_id: str, rid: str, deduction_id: str, amount: int) -> pb.ReturnResponse:
    return await c.quota.Return(
        pb.ReturnRequest(budget_id=budget_id, request_id=rid, deduction_id=deduction_id, amount=amount)
    )


async def test_retries_after_a_sigkill_of_the_agent_apply_once(
    center: CenterThread, client: Client, budget_id: str, tmp_path: Path
) -> None:
    await create(client, budget_id, 100_000, sub_buckets=2)
    port, metrics_port = free_port(), free_port()
    target = f"127.0.0.1:{port}"
    journal = tmp_path / "eu.journal"
    agent_id = f"eu-{uuid.uuid4().hex[:6]}"
    proc = await agent_process(journal, center.target, agent_id, port, metrics_port, RECORD_CAPACITY="10000")
    try:
        agent = Client(target)
        try:
            first = await _deduct(agent, budget_id, f"{budget_id}-first", 5)  # forwarded: no slice yet
            assert (first.code, first.amount) == (OK, 5)
            for i in range(20):  # demand, so that the agent asks for a slice of some size
                assert (await _deduct(agent, budget_id, f"{budget_id}-p{i}", 5)).code == OK

            async def holds() -> bool:
                return await held_here(agent, budget_id) >= 60

            await eventually(holds, 15, "the agent should hold a slice")
            local_before = await asyncio.to_thread(_served_locally, metrics_port)
            local = {f"{budget_id}-k{i}": 1 + i % 4 for i in range(12)}  # 30 in all
            for rid, amount in local.items():
                r = await _deduct(agent, budget_id, rid, amount)
                assert (r.code, r.amount) == (OK, amount)
            refund = await _return(agent, budget_id, f"{budget_id}-refund", f"{budget_id}-k5", 2)
            assert (refund.code, refund.refundable) == (OK, local[f"{budget_id}-k5"] - 2)
            served_here = await asyncio.to_thread(_served_locally, metrics_port) - local_before
            assert served_here == len(local) + 1, "every one of them should have been served from the slice"
        finally:
            await agent.close()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL

        proc = await agent_process(
            journal, center.target, agent_id, port, metrics_port, RECORD_CAPACITY="10000"
        )
        agent = Client(target)
        try:
            for rid, amount in local.items():
                r = await _deduct(agent, budget_id, rid, amount)
                assert (r.code, r.amount) == (EXISTS, amount), rid
            assert (await _deduct(agent, budget_id, f"{budget_id}-k0", 2)).code == CONFLICT
            other = f"{budget_id}-x"
            assert (await _deduct(agent, other, f"{budget_id}-k1", local[f"{budget_id}-k1"])).code == CONFLICT
            again = await _return(agent, budget_id, f"{budget_id}-refund", f"{budget_id}-k5", 2)
            assert (again.code, again.amount, again.refundable) == (EXISTS, 2, local[f"{budget_id}-k5"] - 2)
            left = local[f"{budget_id}-k5"] - 2
            over = await _return(agent, budget_id, f"{budget_id}-refund2", f"{budget_id}-k5", left + 1)
            assert (over.code, over.refundable) == (EXCEEDS_DEDUCTED, left)
            retry_first = await _deduct(agent, budget_id, f"{budget_id}-first", 5)
            assert (retry_first.code, retry_first.amount) == (EXISTS, 5)
        finally:
            await agent.close()

        expected = 5 + 20 * 5 + sum(local.values()) - 2

        async def reported() -> bool:
            return (await get(client, budget_id)).consumed == expected

        await eventually(reported, 15, f"the center should count {expected} consumed, each request once")
        await asyncio.sleep(1.5)  # a heartbeat or more later: still once
        b = await get(client, budget_id)
        assert (b.consumed, b.in_doubt) == (expected, 0)
        await assert_balanced(client, budget_id)
    finally:
        proc.kill()
        proc.wait(10)
