"""The flash sale: a budget sold through three agents by closed-loop buyers, measured in three phases
(``loadtest.phases``), and the window in which the agents still refuse after budget came back (a
Return at the center).

Requests, OKs and latencies come from the buyers' own record of every call; center calls from the
center's metrics (``quota_requests_total`` of Deduct and DeductBatch), sampled during the sale and
read at each phase's bounds.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from loadtest.bench.agent_metrics import cost
from loadtest.bench.client import CLOSED, DEDUCT, Clients, Job
from loadtest.bench.measure import percentile, sleep_until
from loadtest.phases import CenterSampler, phases, targets
from quota.v1 import admin_pb2, admin_pb2_grpc, quota_pb2_grpc
from quota.v1 import common_pb2 as pb
from quota_rules import messages

RETURNED = 3  # units returned at the center in each window trial: one for each agent
TRIAL_TIMEOUT_S = 5.0


async def _window_trials(
    center: str, agents: list[str], budget_id: str, deductions: list[str], log: Callable[[str], None]
) -> list[float | None]:
    """For each deduction made at the center before the sale: wait until every agent refuses the
    sold-out budget on its own, return RETURNED units of it at the center, and time each agent from
    the Return's answer to its first OK. None for an agent that did not serve within the timeout."""
    channels = [grpc.aio.insecure_channel(t) for t in [center, *agents]]
    stubs: list[quota_pb2_grpc.QuotaAsyncStub] = [quota_pb2_grpc.QuotaStub(c) for c in channels]
    windows: list[float | None] = []
    sold_out_here = messages.SOLD_OUT_HERE.format(b=budget_id, n=1)
    probe_ids = (f"{budget_id}-probe-{i}" for i in range(10**9))

    async def deduct(stub: quota_pb2_grpc.QuotaAsyncStub) -> pb.DeductResponse:
        request = pb.DeductRequest(budget_id=budget_id, request_id=next(probe_ids), amount=1)
        return await stub.Deduct(request, timeout=5)

    async def knows_sold_out(stub: quota_pb2_grpc.QuotaAsyncStub) -> None:
        deadline = time.monotonic() + TRIAL_TIMEOUT_S
        for _ in itertools.count():
            if (await deduct(stub)).message == sold_out_here or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.01)

    async def first_ok(stub: quota_pb2_grpc.QuotaAsyncStub, since: float) -> float | None:
        while time.monotonic() - since < TRIAL_TIMEOUT_S:
            if (await deduct(stub)).code == pb.RESULT_CODE_OK:
                return time.monotonic() - since
        return None

    try:
        for k, deduction_id in enumerate(deductions):
            await asyncio.gather(*(knows_sold_out(s) for s in stubs[1:]))
            back = await stubs[0].Return(
                pb.ReturnRequest(
                    budget_id=budget_id,
                    request_id=f"{deduction_id}-back",
                    deduction_id=deduction_id,
                    amount=RETURNED,
                ),
                timeout=10,
            )
            returned_at = time.monotonic()
            if back.code != pb.RESULT_CODE_OK:
                raise RuntimeError(
                    f"returning {deduction_id}: {pb.ResultCode.Name(back.code)} {back.message}"
                )
            windows += await asyncio.gather(*(first_ok(s, returned_at) for s in stubs[1:]))
            if k % 10 == 9:
                log(f"flash sale: {k + 1} of {len(deductions)} return trials")
    finally:
        for c in channels:
            await c.close()
    return windows


def flash_sale(
    clients: Clients,
    center: str,
    center_metrics: str,
    agents: list[str],
    agent_metrics: list[str],
    *,
    total: int,
    buyers: int,
    seconds: float,
    trials: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Sell ``total`` units through ``agents`` with ``buyers`` closed-loop callers for ``seconds``,
    then time ``trials`` returns; the phases, the targets and the window."""
    budget_id = f"flash-{uuid.uuid4().hex[:8]}"
    with grpc.insecure_channel(center) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        quota = quota_pb2_grpc.QuotaStub(channel)
        created = admin.CreateBudget(
            admin_pb2.CreateBudgetRequest(
                budget_id=budget_id, unit="unit", total=total + RETURNED * trials, actor="bench"
            ),
            timeout=30,
        )
        if created.code != pb.RESULT_CODE_OK:
            raise RuntimeError(f"creating {budget_id}: {pb.ResultCode.Name(created.code)} {created.message}")
        # What the window trials return after the sell-out, deducted at the center first.
        kept = [f"{budget_id}-kept-{k}" for k in range(trials)]
        for rid in kept:
            r = quota.Deduct(
                pb.DeductRequest(budget_id=budget_id, request_id=rid, amount=RETURNED), timeout=10
            )
            if r.code != pb.RESULT_CODE_OK:
                raise RuntimeError(f"deducting {rid}: {pb.ResultCode.Name(r.code)} {r.message}")
    n = clients.count
    log(f"flash sale: {total:,} units through {len(agents)} agents, {buyers} buyers, {seconds:g} s")
    start_at = time.monotonic() + 0.5
    jobs = [
        Job(
            target=agents[0],
            targets=tuple(agents),
            method=DEDUCT,
            budget_id=budget_id,
            prefix=f"flash-{budget_id}",
            mode=CLOSED,
            start_at=start_at,
            warmup_s=0.0,
            seconds=seconds,
            concurrency=max(1, buyers // n),
            trace=True,
        )
        for _ in range(n)
    ]
    sampler = CenterSampler(center_metrics)
    before = cost(center_metrics, agent_metrics)
    sampler.start()
    try:
        clients.start(jobs)
        sleep_until(start_at + seconds)
        outcome = clients.collect()
    finally:
        sampler.stop()
    after = cost(center_metrics, agent_metrics)
    if outcome.failure is not None:
        raise RuntimeError(f"flash sale: a client failed: {outcome.failure}")
    result = phases(outcome.trace, sampler.samples, total, start_at, start_at + seconds)
    result.update(
        {
            "budget_id": budget_id,
            "total": total,
            "buyers": buyers,
            "seconds": seconds,
            "agents": len(agents),
            "errors": dict(outcome.errors),
            # What the whole sale cost the center, from its and the agents' own counters.
            "cost": {k: v - before.get(k, 0.0) for k, v in sorted(after.items()) if v > before.get(k, 0.0)},
        }
    )
    result["targets"] = targets(result)
    if not result["sold_out"]:
        log(f"flash sale: only {result['sold']:,} of {total:,} sold in {seconds:g} s; no window trials")
        return result
    log(f"flash sale: sold out; {trials} return trials")
    windows = asyncio.run(_window_trials(center, agents, budget_id, kept, log))
    served = sorted(w for w in windows if w is not None)
    result["window"] = {
        "trials": trials,
        "returned_each": RETURNED,
        "samples": len(windows),
        "not_served": len(windows) - len(served),
        "p50_ms": percentile(served, 0.5) * 1000 if served else None,
        "p99_ms": percentile(served, 0.99) * 1000 if served else None,
        "max_ms": served[-1] * 1000 if served else None,
    }
    return result
