"""One measurement window of one path: the budget it spends, the agent's ramp-up, the clients' jobs."""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from loadtest.bench.agent_metrics import scrape, slice_available
from loadtest.bench.client import CLOSED, DEDUCT_BATCH, OPEN, Clients, Job, Outcome
from loadtest.bench.config import Config
from loadtest.bench.paths import AGENT, CENTER, ECHO, EVALSHA, PathSpec
from loadtest.bench.servers import Servers
from quota.v1 import admin_pb2, admin_pb2_grpc, quota_pb2_grpc
from quota.v1 import common_pb2 as pb

BIG_TOTAL = 2**50  # far more than any run spends: the agent and the sub-buckets serve from slices
SETTLE_S = 0.5
PRIME_TIMEOUT_S = 15.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (q in 0..1)."""
    if not values:
        return math.nan
    return values[max(0, math.ceil(q * len(values)) - 1)]


def stats(outcome: Outcome, seconds: float, batch: int) -> dict[str, Any]:
    lat = sorted(outcome.latencies)
    return {
        "calls": outcome.calls,
        "calls_per_s": outcome.calls / seconds,
        "deductions_per_s": outcome.items_ok / seconds,
        "batch": batch,
        "p50_ms": percentile(lat, 0.50) * 1000 if lat else None,
        "p99_ms": percentile(lat, 0.99) * 1000 if lat else None,
        "refused": outcome.items_refused,
        "errors": dict(outcome.errors),
    }


class Bench:
    """The measurements of one run: its budgets, its clients, the agent metrics of every window."""

    def __init__(self, cfg: Config, servers: Servers, clients: Clients, log: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.servers = servers
        self.clients = clients
        self.log = log
        self.channel = grpc.insecure_channel(servers.center_target)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        self.run_id = uuid.uuid4().hex[:8]
        self.budgets: dict[str, str] = {}
        self.windows: list[tuple[str, dict[str, float], dict[str, float]]] = []

    def target(self, server: str) -> str:
        return {
            AGENT: self.servers.agent_target,
            CENTER: self.servers.center_target,
            ECHO: self.servers.echo_target,
            EVALSHA: self.servers.redis_echo_target,
        }[server]

    def create_budget(self, name: str, total: int) -> str:
        budget_id = f"bench-{name}-{self.run_id}"
        reply = self.admin.CreateBudget(
            admin_pb2.CreateBudgetRequest(budget_id=budget_id, unit="unit", total=total, actor="bench"),
            timeout=30,
        )
        if reply.code != pb.RESULT_CODE_OK:
            raise RuntimeError(
                f"creating budget {budget_id}: {pb.ResultCode.Name(reply.code)} {reply.message}"
            )
        return budget_id

    def budget_for(self, spec: PathSpec) -> str:
        if spec.server not in (AGENT, CENTER):
            return "echo"
        if spec.key not in self.budgets:
            budget_id = self.create_budget(spec.key.replace(".", "-"), BIG_TOTAL)
            if spec.server == AGENT:
                self.prime(spec, budget_id)
            self.budgets[spec.key] = budget_id
        return self.budgets[spec.key]

    def in_flight(self, spec: PathSpec) -> int:
        """Calls one client process keeps in flight on this path in the closed loop."""
        return self.cfg.batch_concurrency if spec.method == DEDUCT_BATCH else self.cfg.concurrency

    def prime(self, spec: PathSpec, budget_id: str) -> None:
        """Ramp the agent up on the budget before the load starts: a warm-up that is a ramp, not a step.

        The agent learns a budget from its first forwarded deduction and asks the center for a
        slice in the background; until the slice arrives everything is forwarded, and a step to
        full load makes the center answer those forwards too late. So calls of the path's own
        kind go one at a time until the agent holds twice what the load keeps in flight.
        """
        cfg = self.cfg
        batch = cfg.batch if spec.method == DEDUCT_BATCH else 1
        wanted = 2 * batch * cfg.clients * self.in_flight(spec)
        with grpc.insecure_channel(self.servers.agent_target) as channel:
            stub = quota_pb2_grpc.QuotaStub(channel)
            deadline = time.monotonic() + PRIME_TIMEOUT_S
            for n in itertools.count():
                items = [
                    pb.DeductRequest(budget_id=budget_id, request_id=f"prime-{budget_id}-{n}-{i}", amount=1)
                    for i in range(batch)
                ]
                with contextlib.suppress(grpc.RpcError):  # UNAVAILABLE while the center is busy
                    if batch == 1:
                        stub.Deduct(items[0], timeout=10)
                    else:
                        stub.DeductBatch(pb.DeductBatchRequest(items=items), timeout=10)
                if slice_available(self.servers.agent_metrics_url, budget_id) >= wanted:
                    return
                if time.monotonic() > deadline:
                    self.log(f"the agent holds less than {wanted} of {budget_id} after {PRIME_TIMEOUT_S:g}s")
                    return

    def measure(self, spec: PathSpec, mode: str, rate: float = 0.0) -> dict[str, Any]:
        cfg = self.cfg
        n = self.clients.count
        if mode == CLOSED:
            self.log(f"{spec.label}: closed loop, {n}×{self.in_flight(spec)} in flight")
        else:
            self.log(f"{spec.label}: open loop at {rate:,.0f} calls/s")
        budget_id = self.budget_for(spec)
        time.sleep(min(SETTLE_S, cfg.seconds / 4))  # let the servers finish what the last one left behind
        batch = cfg.batch if spec.method == DEDUCT_BATCH else 1
        start_at = time.monotonic() + 0.3
        jobs = [
            Job(
                target=self.target(spec.server),
                method=spec.method,
                budget_id=budget_id,
                prefix=f"{spec.key}-{mode}-{self.run_id}",
                mode=mode,
                start_at=start_at,
                warmup_s=cfg.warmup,
                seconds=cfg.seconds,
                batch=batch,
                concurrency=self.in_flight(spec),
                rate=rate / n,
                phase=i / n,
            )
            for i in range(n)
        ]
        self.clients.start(jobs)
        if spec.server == AGENT:
            begin = start_at + cfg.warmup
            sleep_until(begin)
            before = scrape(self.servers.agent_metrics_url)
            sleep_until(begin + cfg.seconds)
            after = scrape(self.servers.agent_metrics_url)
            self.windows.append((f"{spec.key} {mode}", before, after))
        outcome = self.clients.collect()
        if outcome.failure is not None:
            raise RuntimeError(f"{spec.label} ({mode} loop): a client failed: {outcome.failure}")
        result = stats(outcome, cfg.seconds, batch)
        if mode == OPEN:
            result["offered_calls_per_s"] = rate
        if outcome.calls == 0:
            result["failed"] = f"no call answered in the window; errors {dict(outcome.errors)}"
            self.log(f"{spec.label} ({mode} loop): {result['failed']}")
        return result

    def close(self) -> None:
        self.channel.close()


def sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
