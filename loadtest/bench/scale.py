"""``python -m loadtest.bench --budgets N``: what a platform's many budgets cost, most of them idle.

One throwaway stack (Redis, PostgreSQL, the center; one agent started at the end), grown in three
steps, each measured the same way in the same run:

1. ``small``: 10 budgets, each used once;
2. ``active``: ``--active`` budgets more (default 500), each used once (all in the active set);
3. ``many``: N budgets in all, the ``--active`` ones used again just before, the rest created and
   never used (idle).

At each step: the center's CPU and Redis's commands a second with no traffic (over ``--idle-seconds``),
and Deduct throughput on the used budgets (a closed loop of 1-unit Deducts spread over them, at
steady state: after a warm-up of 100 Deducts per budget, at most a minute). At
the last: Redis memory and the center's RSS per idle budget (from the growth between steps 2 and
3), ``ListBudgets`` pages of 100 from random places, and a full audit page by page. After step 1:
the bytes a served request leaves in Redis (during the request window and after it) and in the
spend log; at the end, the agent's memory per request it remembers. The targets
are ratios in this one run, printed with the values.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import grpc
from redis import Redis

from devstack import Stack
from devstack.grpc_servers import AgentProcess
from quota.v1 import admin_pb2, admin_pb2_grpc, common_pb2, quota_pb2_grpc

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CREATE_CONCURRENCY = 64
# Deducts whose leftovers (claim, record, spend-log row) are measured.
REMEMBERED = 20_000
DEDUCT_CONCURRENCY = 64
# Before Deduct throughput is measured, each budget used serves this many on average (its
# sub-buckets past their first slices: steady state), for at most WARM_MAX_S.
WARM_DEDUCTS = 100
WARM_MAX_S = 60.0
AGENT = "eu"
# The center's request window here by default (Redis forgets a request after it; the center's own
# default is 600 s), with the spend log's lease and dead-after below it, as the center requires.
REQUEST_WINDOW_S = 10
# Today's bytes per remembered request in Redis (a claim and a record for the whole retention,
# 32-character ids), measured by this benchmark before the request window existed.
REDIS_BYTES_BEFORE = 414
RETENTION_S = 7 * 24 * 3600
_SPEND_LOG_BYTES = """
SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i
WHERE i.inhparent = 'spend_log'::regclass
"""


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE_SIZE


class Scale:
    def __init__(self, stack: Stack, log: Callable[[str], None], window_s: int = REQUEST_WINDOW_S) -> None:
        self.stack = stack
        self.log = log
        self.window_s = window_s
        self.redis = Redis.from_url(stack.redis_url)
        self.pid = stack.pid("center")
        self.channel = grpc.aio.insecure_channel(stack.center)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        self.quota = quota_pb2_grpc.QuotaStub(self.channel)
        self.tag = uuid.uuid4().hex[:6]

    async def create(self, ids: list[str]) -> None:
        queue = iter(ids)
        done = 0
        started = last = time.monotonic()

        async def worker() -> None:
            nonlocal done, last
            for budget_id in queue:
                r = await self.admin.CreateBudget(
                    admin_pb2.CreateBudgetRequest(
                        budget_id=budget_id, unit="unit", total=10**9, actor="bench"
                    ),
                    timeout=60,
                )
                if r.code not in (common_pb2.RESULT_CODE_OK, common_pb2.RESULT_CODE_EXISTS):
                    raise RuntimeError(
                        f"creating {budget_id}: {common_pb2.ResultCode.Name(r.code)} {r.message}"
                    )
                done += 1
                now = time.monotonic()
                if now - last >= 5:
                    last = now
                    self.log(f"created {done:,} of {len(ids):,} ({done / (now - started):,.0f}/s)")

        await asyncio.gather(*(worker() for _ in range(CREATE_CONCURRENCY)))

    async def use(self, ids: list[str]) -> None:
        """One Deduct each: the budget is in use (in the active set)."""
        sem = asyncio.Semaphore(DEDUCT_CONCURRENCY)

        async def one(budget_id: str) -> None:
            async with sem:
                await self._deduct(budget_id)

        await asyncio.gather(*(one(b) for b in ids))

    async def _deduct(self, budget_id: str) -> None:
        r = await self.quota.Deduct(
            common_pb2.DeductRequest(budget_id=budget_id, request_id=uuid.uuid4().hex, amount=1), timeout=30
        )
        if r.code != common_pb2.RESULT_CODE_OK:
            raise RuntimeError(
                f"deducting from {budget_id}: {common_pb2.ResultCode.Name(r.code)} {r.message}"
            )

    async def idle(self, seconds: float) -> dict[str, float]:
        """The center's CPU (fraction of a core) and Redis's commands a second, with no traffic."""
        await asyncio.sleep(1.0)  # what the last calls started settles
        cpu0, cmds0, t0 = _cpu_s(self.pid), self._commands(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, cmds1, t1 = _cpu_s(self.pid), self._commands(), time.monotonic()
        return {"center_cpu": (cpu1 - cpu0) / (t1 - t0), "redis_commands_per_s": (cmds1 - cmds0) / (t1 - t0)}

    def _commands(self) -> int:
        # INFO itself is one command: negligible next to what is measured.
        return int(self.redis.info("stats")["total_commands_processed"])

    async def throughput(self, ids: list[str], seconds: float) -> float:
        """Deducts a second, closed loop, spread over ``ids``, over ``seconds`` after a warm-up
        (not counted) of at least as long and until ``WARM_DEDUCTS`` per budget were served, at
        most ``WARM_MAX_S``: the steady state. A budget just used holds first slices sized by its
        first draws; a few hundred budgets sharing the load get a handful of deductions each in
        seconds, so a short warm-up would measure the first refills, not the load."""
        warm = 0.0
        started = time.monotonic()
        while True:
            warm += seconds * await self._closed_loop(ids, seconds)
            spent = time.monotonic() - started
            if warm >= WARM_DEDUCTS * len(ids) or spent + seconds > WARM_MAX_S:
                break
        return await self._closed_loop(ids, seconds)

    async def _closed_loop(self, ids: list[str], seconds: float) -> float:
        stop = time.monotonic() + seconds
        count = 0

        async def worker(w: int) -> None:
            nonlocal count
            i = w
            while time.monotonic() < stop:
                await self._deduct(ids[i % len(ids)])
                count += 1
                i += DEDUCT_CONCURRENCY

        started = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(DEDUCT_CONCURRENCY)))
        return count / (time.monotonic() - started)

    async def list_pages(self, ids: list[str], pages: int) -> list[float]:
        """ms of ``pages`` ListBudgets calls of 100, each from a random budget on."""
        times = []
        ordered = sorted(ids)
        starts = ordered[: max(1, len(ordered) - 100)]  # each leaves a whole page after it
        for start in random.Random(7).sample(starts, min(pages, len(starts))):
            t = time.perf_counter()
            page = await self.admin.ListBudgets(admin_pb2.ListBudgetsRequest(page_size=100, page_token=start))
            times.append(1000 * (time.perf_counter() - t))
            if len(page.budgets) == 0:
                raise RuntimeError("an empty page")
        return times

    async def audit_all(self) -> tuple[int, float, bool]:
        """Budgets audited, budgets a second, and whether all balanced: Audit pages of 1000."""
        token, count, balanced = "", 0, True
        started = time.monotonic()
        while True:
            a = await self.admin.Audit(admin_pb2.AuditRequest(page_size=1000, page_token=token), timeout=120)
            count += len(a.budgets)
            balanced = balanced and a.balanced
            token = a.next_page_token
            if not token:
                return count, count / (time.monotonic() - started), balanced

    async def per_request(self, ids: list[str], count: int) -> dict[str, float]:
        """Bytes a served request leaves behind, over ``count`` 1-unit Deducts with new ids: in
        Redis during the request window (claim, record, its bits in the seen filters) and after it
        (the filters only), and in the spend log (table and indexes), which keeps it for the
        retention."""
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            # The claims and records of the requests before go first: they would leave meanwhile.
            await asyncio.sleep(self.window_s + 1)
            await self._expired()
            redis0 = int(self.redis.info("memory")["used_memory"])
            log0 = int(await conn.fetchval(_SPEND_LOG_BYTES))
            sem = asyncio.Semaphore(DEDUCT_CONCURRENCY)

            async def one(n: int) -> None:
                async with sem:
                    await self._deduct(ids[n % len(ids)])

            started = time.monotonic()
            await asyncio.gather(*(one(n) for n in range(count)))
            await asyncio.sleep(2.0)  # the spend log is written behind
            redis1 = int(self.redis.info("memory")["used_memory"])
            log1 = int(await conn.fetchval(_SPEND_LOG_BYTES))
            # Past the window: Redis lets the claims and records go (its expiry cycle takes a
            # sample at a time; this waits until it has).
            await asyncio.sleep(max(0.0, self.window_s + 1 - (time.monotonic() - started)))
            await self._expired()
            redis2 = int(self.redis.info("memory")["used_memory"])
        finally:
            await conn.close()
        return {
            "requests": count,
            "redis_window_bytes": (redis1 - redis0) / count,
            "redis_after_bytes": (redis2 - redis0) / count,
            "spend_log_bytes": (log1 - log0) / count,
        }

    async def _expired(self) -> None:
        """Wait until Redis has let its expired keys go: its expiry cycle takes a sample at a
        time, so the key count falls for a while after the TTLs ran out (a minute at most)."""
        count = int(self.redis.dbsize())
        for _ in range(60):
            await asyncio.sleep(1.0)
            now = int(self.redis.dbsize())
            if now == count:
                return
            count = now

    async def agent_per_request(self, count: int) -> dict[str, float]:
        """The agent's RSS growth per request it remembers, over ``count`` 1-unit Deducts with new
        ids served through it (its records in memory, and the pages of its record ring file)."""
        budget_id = f"g{self.tag}"
        await self.create([budget_id])
        # Started only now: an agent connected through the steps would add its session's work to
        # the center's idle figures.
        agent = AgentProcess(
            self.stack.center,
            agent_id=f"{AGENT}-1",
            region=AGENT,
            journal=self.stack.dir / f"{AGENT}-1.journal",
            log_path=self.stack.log_dir / f"agent-{AGENT}-1.log",
        )
        await asyncio.to_thread(self.stack.add, f"agent-{AGENT}-1", agent)
        pid = self.stack.pid(f"agent-{AGENT}-1")
        async with grpc.aio.insecure_channel(agent.target) as channel:
            quota = quota_pb2_grpc.QuotaStub(channel)

            async def deduct() -> None:
                r = await quota.Deduct(
                    common_pb2.DeductRequest(budget_id=budget_id, request_id=uuid.uuid4().hex, amount=1),
                    timeout=30,
                )
                if r.code != common_pb2.RESULT_CODE_OK:
                    raise RuntimeError(f"agent Deduct: {common_pb2.ResultCode.Name(r.code)} {r.message}")

            for _ in range(200):  # its slice arrives; the interpreter's pools warm up
                await deduct()
            await asyncio.sleep(1.0)
            rss0 = _rss_bytes(pid)
            sem = asyncio.Semaphore(DEDUCT_CONCURRENCY)

            async def one() -> None:
                async with sem:
                    await deduct()

            await asyncio.gather(*(one() for _ in range(count)))
            await asyncio.sleep(1.0)
            rss1 = _rss_bytes(pid)
        return {"requests": count, "rss_bytes": (rss1 - rss0) / count}

    def memory(self) -> tuple[int, int]:
        return int(self.redis.info("memory")["used_memory"]), _rss_bytes(self.pid)

    async def close(self) -> None:
        await self.channel.close()
        self.redis.close()


async def _run(
    stack: Stack, budgets: int, active: int, idle_s: float, log: Callable[[str], None], window_s: int
) -> dict[str, Any]:
    s = Scale(stack, log, window_s)
    load_s = min(5.0, max(1.0, idle_s / 2))  # each Deduct throughput window
    try:
        small = [f"s{s.tag}-{i:07d}" for i in range(10)]
        used = [f"a{s.tag}-{i:07d}" for i in range(active)]
        idle = [f"i{s.tag}-{i:07d}" for i in range(budgets - active - len(small))]  # N in all
        steps: dict[str, dict[str, float]] = {}

        log("step 1: 10 budgets, each used")
        await s.create(small)
        await s.use(small)
        steps["small"] = {**await s.idle(idle_s), "deducts_per_s": await s.throughput(small, load_s)}
        log("bytes per remembered request")
        remembered = await s.per_request(small, min(REMEMBERED, 10 * budgets))

        log(f"step 2: {active:,} budgets, each used")
        await s.create(used)
        await s.use(used)
        steps["active"] = {**await s.idle(idle_s), "deducts_per_s": await s.throughput(used, load_s)}
        before = s.memory()

        log(f"step 3: {budgets:,} budgets in all, {len(idle):,} of them created and never used")
        await s.create(idle)
        await asyncio.sleep(2)
        after = s.memory()
        await s.use(used)  # the active ones stay active however long the creation took
        steps["many"] = {**await s.idle(idle_s), "deducts_per_s": await s.throughput(used, load_s)}
        log("ListBudgets pages and a full audit")
        pages = await s.list_pages(small + used + idle, 30)
        audited, rate, balanced = await s.audit_all()
        log("bytes per remembered request at an agent")
        agent = await s.agent_per_request(min(REMEMBERED, 10 * budgets))
        return {
            "budgets": budgets,
            "active": active,
            "idle_seconds": idle_s,
            "steps": steps,
            "per_request": {**remembered, "window_s": window_s},
            "agent_per_request": agent,
            "redis_bytes_per_idle_budget": (after[0] - before[0]) / max(1, len(idle)),
            "center_rss_bytes_per_idle_budget": (after[1] - before[1]) / max(1, len(idle)),
            "list_page_ms": {"p50": statistics.median(pages), "max": max(pages)},
            "audit": {"budgets": audited, "budgets_per_s": rate, "balanced": balanced},
        }
    finally:
        await s.close()


def run_scale(
    budgets: int,
    active: int,
    idle_s: float,
    log: Callable[[str], None],
    keep: bool = False,
    window_s: int = REQUEST_WINDOW_S,
) -> dict[str, Any]:
    stack = Stack(
        regions=(),
        progress=log,
        keep=keep,
        center_settings={
            "LOG_LEVEL": "WARNING",
            "REQUEST_WINDOW_S": str(window_s),
            # Below the window, as the center requires: a log that cannot be written for 30 % of
            # the window stops spending, a silent center is gone after 60 %.
            "WRITEBEHIND_LEASE_MS": str(window_s * 300),
            "INSTANCE_DEAD_AFTER_MS": str(window_s * 600),
        },
        postgres_settings={"max_connections": "200"},
    )
    try:
        log(f"starting the servers in {stack.dir}")
        stack.start()
        return asyncio.run(_run(stack, budgets, active, idle_s, log, window_s))
    finally:
        log("stopping the servers")
        stack.stop()


def targets(report: dict[str, Any]) -> list[tuple[str, float, str, bool]]:
    """(what, value, bound, met) of each target."""
    small, active, many = (report["steps"][k] for k in ("small", "active", "many"))

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else float("inf") if a > 0 else 1.0

    cpu = ratio(many["center_cpu"], active["center_cpu"])
    cmds = ratio(many["redis_commands_per_s"], active["redis_commands_per_s"])
    deducts = ratio(many["deducts_per_s"], small["deducts_per_s"])
    r = report["per_request"]
    # Averaged over a week's retention with the default window of 600 s.
    held = r["redis_after_bytes"] + r["redis_window_bytes"] * 600 / RETENTION_S
    memory = held / REDIS_BYTES_BEFORE
    return [
        (f"idle center CPU, {report['budgets']:,} ÷ {report['active']:,} budgets", cpu, "≤ 1.5", cpu <= 1.5),
        (f"Redis commands/s idle, {report['budgets']:,} ÷ {report['active']:,}", cmds, "≤ 1.5", cmds <= 1.5),
        ("Deduct/s on the active ones ÷ with 10 budgets", deducts, "≥ 0.9", deducts >= 0.9),
        (
            "ListBudgets page of 100, p50 ms",
            report["list_page_ms"]["p50"],
            "< 50",
            report["list_page_ms"]["p50"] < 50,
        ),
        (
            "full audit, budgets/s",
            report["audit"]["budgets_per_s"],
            "≥ 2,000",
            report["audit"]["budgets_per_s"] >= 2000,
        ),
        (
            f"Redis bytes per remembered request, 7 days ÷ {REDIS_BYTES_BEFORE} before",
            memory,
            "≤ 0.1",
            memory <= 0.1,
        ),
    ]


def render(report: dict[str, Any]) -> str:
    lines = [
        f"State that scales: {report['budgets']:,} budgets, {report['active']:,} active, one center (an agent only at the end);"
        f" idle figures over {report['idle_seconds']:g} s with no traffic; Deduct/s at steady state"
        f" (after {WARM_DEDUCTS} per budget used, at most {WARM_MAX_S:g} s)",
        f"{'step':<8} {'budgets':>9} {'idle center CPU':>16} {'Redis cmds/s idle':>18} {'Deduct/s':>9}",
    ]
    counts = {"small": 10, "active": 10 + report["active"], "many": report["budgets"]}
    for name, step in report["steps"].items():
        lines.append(
            f"{name:<8} {counts[name]:>9,} {100 * step['center_cpu']:>15.1f}% {step['redis_commands_per_s']:>18,.0f}"
            f" {step['deducts_per_s']:>9,.0f}"
        )
    r = report["per_request"]
    lines.append(
        f"per remembered request ({r['requests']:,} Deducts at the center, request ids of 32 characters):"
        f" Redis {r['redis_window_bytes']:,.0f} bytes for the request window ({r['window_s']} s here),"
        f" {r['redis_after_bytes']:,.1f} bytes after it (seen filters); spend log {r['spend_log_bytes']:,.0f}"
        " bytes for the retention"
    )
    a = report["agent_per_request"]
    lines.append(
        f"per remembered request at an agent ({a['requests']:,} Deducts served through it): RSS"
        f" {a['rss_bytes']:,.0f} bytes (records in memory and the pages of its record ring file; kept"
        " up to REGION_AGENT_MAX_RECORDS)"
    )
    lines.append(
        f"memory per idle budget: Redis {report['redis_bytes_per_idle_budget']:,.0f} bytes,"
        f" center RSS {report['center_rss_bytes_per_idle_budget']:,.0f} bytes"
    )
    pages = report["list_page_ms"]
    audit = report["audit"]
    lines.append(
        f"ListBudgets, page of 100 from a random place: p50 {pages['p50']:.1f} ms, max {pages['max']:.1f} ms"
    )
    lines.append(
        f"full audit: {audit['budgets']:,} budgets at {audit['budgets_per_s']:,.0f}/s,"
        f" {'all balanced' if audit['balanced'] else 'NOT ALL BALANCED'}"
    )
    lines.append(f"{'target':<48} {'value':>9} {'bound':>8} result")
    for what, value, bound, met in targets(report):
        lines.append(f"{what:<48} {value:>9.2f} {bound:>8} {'met' if met else 'NOT MET'}")
    return "\n".join(lines)
