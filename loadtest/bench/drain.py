"""The drain: a small budget spent to the end through the agent and the center, its holders sampled."""

from __future__ import annotations

import time
from typing import Any

from loadtest.bench.client import CLOSED, DEDUCT, Job
from loadtest.bench.measure import Bench, sleep_until
from loadtest.bench.paths import AGENT, CENTER
from quota.v1 import admin_pb2

SAMPLE_EVERY_S = 0.1


def drain(bench: Bench, agent_rate: float, center_rate: float) -> dict[str, Any]:
    """Spend a small budget to the end through the agent and the center, sampling the holders."""
    cfg = bench.cfg
    seconds = cfg.drain_seconds
    # Sized to be spent in about a third of the window at the measured rates: the last units
    # go in central mode, one at a time under the budget's lock, far slower than the rest.
    total = max(1000, int(0.35 * seconds * (agent_rate + center_rate) / 2))
    budget_id = bench.create_budget("drain", total)
    start_at = time.monotonic() + 0.5
    servers = [AGENT, CENTER] if bench.clients.count > 1 else [AGENT]
    jobs = [
        Job(
            target=bench.target(servers[i % len(servers)]),
            method=DEDUCT,
            budget_id=budget_id,
            prefix=f"drain-{bench.run_id}",
            mode=CLOSED,
            start_at=start_at,
            warmup_s=0.0,
            seconds=seconds,
            concurrency=cfg.concurrency,
        )
        for i in range(bench.clients.count)
    ]
    bench.log(f"drain: budget {budget_id}, total {total:,}, {seconds:.1f}s through the agent and the center")
    bench.clients.start(jobs)
    samples = []
    tick = start_at - SAMPLE_EVERY_S
    end = start_at + seconds + 0.5
    while tick < end:
        sleep_until(tick)
        audit = bench.admin.Audit(admin_pb2.AuditRequest(budget_id=budget_id), timeout=10).budgets[0]
        samples.append(
            {
                "t": round(time.monotonic() - start_at, 3),
                "main": audit.main,
                "available": audit.total - audit.consumed - audit.reserved - audit.in_doubt,
                "consumed": audit.consumed,
                "in_flight": audit.in_flight,
                "in_doubt": audit.in_doubt,
                "holders": {h.holder: h.balance for h in audit.holders if h.holder != "main"},
            }
        )
        tick += SAMPLE_EVERY_S
        while tick < time.monotonic():  # an audit slower than the period: skip the ticks missed
            tick += SAMPLE_EVERY_S
    outcome = bench.clients.collect()
    final = bench.admin.Audit(admin_pb2.AuditRequest(budget_id=budget_id), timeout=10)
    b = final.budgets[0]
    drained_at = next((s["t"] for s in samples if s["available"] == 0), None)
    return {
        "budget_id": budget_id,
        "total": total,
        "seconds": seconds,
        "deductions_ok": outcome.items_ok,
        "refused": outcome.items_refused,
        "errors": dict(outcome.errors),
        "consumed": b.consumed,
        "drained": b.consumed == b.total,
        "drained_after_s": drained_at,
        "balanced": final.balanced,
        "mismatches": list(b.mismatches),
        "samples": samples,
    }
