"""Assembles the center: stores, services, the gRPC server with health and reflection, metrics, sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from quota.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    quota_pb2,
    quota_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
)
from quota_center.agents.holdings import AgentHoldings
from quota_center.agents.relay import Relay
from quota_center.agents.sessions import Sessions
from quota_center.api.admin import AdminServicer
from quota_center.api.errors import CALLS
from quota_center.api.quota import QuotaServicer
from quota_center.api.session import AgentSessionServicer
from quota_center.buckets import layout
from quota_center.buckets.agents import AgentStore
from quota_center.buckets.client import connect
from quota_center.buckets.reservations import ReservationStore
from quota_center.buckets.scripts import RedisClient
from quota_center.buckets.seen import Seen
from quota_center.buckets.store import BucketStore
from quota_center.budgets.activity import Activity, Pending
from quota_center.budgets.admin import Admin
from quota_center.budgets.audit import Auditor
from quota_center.budgets.registry import Registry
from quota_center.budgets.sellout import SellOut
from quota_center.clock import Clock
from quota_center.health import Health
from quota_center.ledger.store import LedgerStore
from quota_center.loop_failures import LoopFailures
from quota_center.metrics import ACCESS_DENIED, BUDGETS, LEDGER, SPEND_LOG
from quota_center.recovery.rebuild import Recovery
from quota_center.recovery.recall import Recall
from quota_center.recovery.settlement import Settlement
from quota_center.recovery.spend_days import SpendDays
from quota_center.recovery.writebehind import WriteBehind
from quota_center.refill.background import Filler
from quota_center.refill.cover import Replenisher
from quota_center.refill.locks import BudgetLocks
from quota_center.settings import PREFIX, Settings, SettingsError, check
from quota_center.spending.deductions import Spending
from quota_center.spending.expiry import Expiry
from quota_center.spending.reservations import Reservations
from quota_center.transfers.protocol import Transfers
from quota_center.transfers.sweeper import ALIVE_WITHIN_MS, Sweeper
from quota_rules.decoding import add_servicer
from quota_rules.guard import Guard
from quota_rules.listeners import HealthListener, Security, listen, load_security, warnings
from quota_rules.loops import until_stopped
from quota_rules.rates import Demand

log = logging.getLogger(__name__)
# Budgets read together by the gauge and lease loops.
GAUGE_PAGE = 200
# The spend log's next days are created, and those past the retention dropped, this often.
SPEND_DAYS_EVERY_S = 600.0

SERVICE_NAMES = [
    quota_pb2.DESCRIPTOR.services_by_name["Quota"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
    session_pb2.DESCRIPTOR.services_by_name["AgentSession"].full_name,
]


@dataclass
class Center:
    """A running center: its ports, its parts, and the background tasks to stop."""

    settings: Settings
    server: grpc.aio.Server
    port: int
    ledger: LedgerStore
    redis: RedisClient
    buckets: BucketStore
    registry: Registry
    spending: Spending
    admin: Admin
    auditor: Auditor
    sweeper: Sweeper
    recovery: Recovery
    transfers: Transfers
    health: Health
    reservations: Reservations
    expiry: Expiry
    metrics_port: int | None = None
    token_port: int | None = None
    health_listener: HealthListener | None = None  # QUOTA_CENTER_HEALTH_PORT: probes without TLS
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    spend_log: WriteBehind | None = None
    settlement: Settlement | None = None
    # The days request ids are remembered by (the seen filters, the spend log's partitions).
    clock: Clock = field(default_factory=Clock)

    async def stop(self, grace_s: float | None = None, delay_s: float | None = None) -> None:
        """Drain: readiness NOT_SERVING, keep serving for the shutdown delay (Kubernetes takes the
        pod out of its Service meanwhile), refuse new calls, let in-flight ones finish, then close
        stores."""
        await self.health.drain()
        delay_s = self.settings.shutdown_delay_ms / 1000 if delay_s is None else delay_s
        if delay_s > 0:
            log.info("not ready; serving %.1fs more before draining", delay_s)
            await asyncio.sleep(delay_s)
        await self.server.stop(self.settings.drain_grace_s if grace_s is None else grace_s)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            await _stopped(task)
        await self.expiry.activity.flush()  # the marks the last requests left
        if self.settlement is not None:
            await self.settlement.close()
        if self.spend_log is not None:
            await self.spend_log.close()  # last: everything spent is written, then a clean stop
            SPEND_LOG.sources.remove(self.spend_log)
        if self.health_listener is not None:
            await self.health_listener.stop()  # last to go: probes are answered throughout the drain
        await self.ledger.close()
        LEDGER.sources.remove(self.ledger)
        BUDGETS.track(())  # a stopped center looks after no budget
        await self.redis.aclose()


def _alive(tasks: list[asyncio.Task[None]]) -> bool:
    """No background loop has died (a one-off task that finished is fine)."""
    return not any(t.done() and (t.cancelled() or t.exception() is not None) for t in tasks)


async def _stopped(task: asyncio.Task[None]) -> None:
    """Wait for a cancelled background task to end, cancelling it again if it carries on.

    On Python 3.11 ``asyncio.wait_for``, which redis-py wraps every command in, drops a
    cancellation that arrives just as its command completes; a loop making one Redis call
    after another (sweeper, expiry) then runs on and the drain never ends.
    """
    while not task.done():
        await asyncio.wait({task}, timeout=0.1)
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


async def start(settings: Settings, *, metrics: bool = True, background: bool = True) -> Center:
    """Connect to PostgreSQL (applying migrations) and Redis, and start serving."""
    check(settings)  # settings built in code (tests) are held to the rules the environment's are
    security = _security(settings)  # before anything connects: a bad file stops the start at once
    ledger = await LedgerStore.open(
        settings.database_url,
        max_size=settings.ledger_pool_size,
        batch_max=settings.ledger_batch_max,
        batch_wait_ms=settings.ledger_batch_wait_ms,
    )
    redis = connect(settings.redis_url)
    migrating = await _key_layout(redis)
    buckets = BucketStore(redis, settings.retention_s, settings.request_window_s)
    registry = Registry(ledger)
    ledger_id = await ledger.identity()
    clock = ledger.clock = Clock()
    buckets.seen = Seen(redis, buckets.scripts, ledger_id, settings.retention_s, clock)
    buckets.seen.started, buckets.seen.note_started = (
        ledger.seen_filters_started,
        ledger.note_seen_filters_started,
    )
    # Which budgets the background loops look after (budgets/activity.py).
    activity = Activity(redis, buckets.scripts, ledger_id, idle_ms=settings.idle_after_ms)
    transfers = Transfers(buckets, ledger)
    transfers.touch = activity.ensure
    spend_log = WriteBehind(
        ledger,
        interval_ms=settings.writebehind_interval_ms,
        batch=settings.writebehind_batch,
        heartbeat_ms=settings.writebehind_heartbeat_ms,
        lease_ms=settings.writebehind_lease_ms,
        name=f"{socket.gethostname()}:{os.getpid()}",
    )
    settlement = Settlement(
        registry,
        buckets,
        ledger,
        transfers,
        spend_log,
        dead_after_s=settings.instance_dead_after_ms / 1000,
        release=settings.settle_release != 0,
    )
    recovery = Recovery(registry, buckets, ledger, on_rebuilt=settlement.after_rebuild)
    auditor = Auditor(registry, buckets, ledger)
    admin = Admin(registry, buckets, ledger, transfers, recovery, auditor, settings.default_sub_buckets)
    recall = Recall(
        ledger, spend_log, settlement, retention_s=settings.retention_s, gate_ms=settings.recall_gate_ms
    )
    # One view of observed demand per process: the filler feeds it, on-demand refills read it.
    demand = Demand(settings.rate_half_life_ms / 1000) if settings.fill_interval_ms > 0 else None
    locks = BudgetLocks()
    agent_store = AgentStore(buckets)
    # A live agent speaks every heartbeat: three silent ones and its stream may be replaced.
    sessions = Sessions(
        agent_store,
        settings.agent_reclaim_timeout_ms / 1000,
        stale_after_s=3 * settings.agent_heartbeat_ms / 1000,
        max_unread=settings.agent_session_max_unread,
    )
    # Reclaim orders reach the agents connected to the other center processes through Redis.
    relay = Relay(redis)
    sessions.relay = relay
    # The budgets' sold-out marks, told to the agents connected here as they change.
    sellout = SellOut(buckets)
    sellout.listeners.append(sessions.announce)
    admin.sellout = recovery.sellout = settlement.sellout = sellout
    replenisher = Replenisher(
        buckets,
        transfers,
        ledger,
        locks,
        demand=demand,
        reclaim=sessions.reclaim,
        held=agent_store.holdings,
        sellout=sellout,
        settles=settings.settle_release != 0,
    )
    spending = Spending(
        registry, buckets, replenisher, recovery, spend_log, recall, vouch=sessions.lookup, sellout=sellout
    )
    sweeper = Sweeper(
        registry,
        buckets,
        transfers,
        recovery,
        activity.active,
        settings.transfer_stale_ms,
        settlement=settlement,
        ledger=ledger,
        alive_within_ms=max(ALIVE_WITHIN_MS, 10 * settings.writebehind_heartbeat_ms),
    )
    reservation_store = ReservationStore(buckets)
    reservations = Reservations(
        registry,
        reservation_store,
        replenisher,
        recovery,
        default_ttl_ms=settings.reservation_ttl_ms,
        max_ttl_ms=settings.reservation_max_ttl_ms,
        log=spending.log,
        recall=recall,
        sellout=sellout,
    )
    expiry = Expiry(registry, reservation_store, activity, sellout=sellout)
    spending.touch = activity.touch_soon
    reservations.activity = admin.activity = activity
    holdings = AgentHoldings(
        registry,
        buckets,
        agent_store,
        transfers,
        replenisher,
        locks,
        ledger,
        lease_ms=settings.agent_lease_ms,
        skew_ms=settings.agent_lease_skew_ms,
        demand=demand,
        recovery=recovery,
        sellout=sellout,
    )
    tasks: list[asyncio.Task[None]] = []  # the background loops (Center.tasks)
    health = Health(SERVICE_NAMES, redis, ledger, loops_alive=lambda: _alive(tasks))
    LEDGER.sources.append(ledger)
    BUDGETS.limit = settings.metrics_budgets
    CALLS.ok_sample, CALLS.per_s = settings.log_ok_sample, settings.log_calls_per_s

    server = grpc.aio.server()
    # Plaintext identifies nobody: no guard, and no cost on the request path.
    guard = (
        Guard(security.policy, on_denied=lambda method, code: ACCESS_DENIED.labels(method, code).inc())
        if security.tls
        else None
    )
    add_servicer(
        quota_pb2_grpc.add_QuotaServicer_to_server,
        QuotaServicer(spending, admin, reservations),
        server,
        guard,
    )
    add_servicer(
        admin_pb2_grpc.add_AdminServicer_to_server, AdminServicer(admin, auditor, settlement), server, guard
    )
    add_servicer(
        session_pb2_grpc.add_AgentSessionServicer_to_server,
        AgentSessionServicer(holdings, sessions, heartbeat_ms=settings.agent_heartbeat_ms),
        server,
        guard,
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    reflection.enable_server_reflection(
        [*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    port = listen(server, f"{settings.grpc_host}:{settings.grpc_port}", security)
    token_port = None
    if settings.token_port >= 0:
        token_port = listen(
            server, f"{settings.grpc_host}:{settings.token_port}", security, client_certificates=False
        )
    for warning in warnings(security, f"{settings.grpc_host}:{port}", token_port is not None):
        log.warning(warning)
    health_listener = None
    if settings.health_port >= 0:
        health_listener = HealthListener(
            lambda s: health_pb2_grpc.add_HealthServicer_to_server(health.servicer, s),
            f"{settings.grpc_host}:{settings.health_port}",
        )
    await health.check()
    await spend_log.start()  # registered before the first request can spend
    SPEND_LOG.sources.append(spend_log)
    await server.start()
    if health_listener is not None:
        await health_listener.start()
    center = Center(
        settings,
        server,
        port,
        ledger,
        redis,
        buckets,
        registry,
        spending,
        admin,
        auditor,
        sweeper,
        recovery,
        transfers,
        health,
        reservations,
        expiry,
        spend_log=spend_log,
        settlement=settlement,
        token_port=token_port,
        health_listener=health_listener,
        clock=clock,
        tasks=tasks,
    )
    if metrics:
        http, _ = start_http_server(settings.metrics_port, addr=settings.grpc_host)
        center.metrics_port = http.server_port
    if migrating is not None:
        center.tasks.append(migrating)
    if background:
        center.tasks.append(asyncio.create_task(health.run(settings.health_interval_ms / 1000)))
        center.tasks.append(asyncio.create_task(sweeper.run(settings.sweep_interval_ms / 1000)))
        center.tasks.append(
            asyncio.create_task(SpendDays(ledger, settings.retention_s).run(SPEND_DAYS_EVERY_S))
        )
        center.tasks.append(asyncio.create_task(expiry.run(settings.expiry_interval_ms / 1000)))
        center.tasks.append(
            asyncio.create_task(
                _expire_leases(activity, buckets, holdings, settings.agent_expiry_interval_ms / 1000)
            )
        )
        center.tasks.append(
            asyncio.create_task(_refresh_gauges(activity, auditor, settings.gauge_interval_s))
        )
        pending = Pending(registry, buckets, activity)
        center.tasks.append(
            asyncio.create_task(
                activity.run(
                    pending.busy,
                    functools.partial(admin.all_ids, closed=False),
                    idle_ms=settings.idle_after_ms,
                    interval_s=settings.activity_interval_ms / 1000,
                )
            )
        )
        center.tasks.append(asyncio.create_task(relay.run(sessions.order)))
        if demand is not None:
            filler = Filler(
                registry,
                activity.marks,
                buckets,
                transfers,
                recovery,
                locks,
                demand,
                interval_s=settings.fill_interval_ms / 1000,
                idle_s=settings.fill_idle_ms / 1000,
                changes=activity.take_changes,
            )
            center.tasks.append(asyncio.create_task(filler.run()))
    _ = common_pb2  # the shared messages are part of the reflected file set
    return center


def _security(settings: Settings) -> Security:
    security = load_security(PREFIX, settings)
    if settings.token_port >= 0 and not security.tls:
        raise SettingsError(f"{PREFIX}TOKEN_PORT needs TLS: set {PREFIX}TLS_CERT_FILE and _KEY_FILE")
    return security


async def _key_layout(redis: RedisClient) -> asyncio.Task[None] | None:
    """Bring Redis to the current key layout before anything reads it; if Redis is down, as soon
    as it answers (a task). A tag two budgets shared stops the start (layout.SharedTag)."""
    try:
        await layout.migrate(redis)
    except RedisError as exc:
        log.warning("Redis not reachable at start (%s): its key layout is checked once it is", exc)
        return asyncio.create_task(layout.migrate_when_reachable(redis))
    return None


async def _every_budget(
    name: str,
    budget_ids: Callable[[], Awaitable[list[str]]],
    work: Callable[[str], Awaitable[object]],
    interval_s: float,
) -> None:
    """Run ``work`` on every budget ``budget_ids`` gives, each interval; a budget that fails does
    not stop the others."""
    failures = LoopFailures(name)
    while True:
        try:
            for budget_id in await budget_ids():
                try:
                    await work(budget_id)
                except Exception as exc:
                    failures.failed(exc, budget_id)
                else:
                    failures.succeeded(budget_id)
        except Exception as exc:
            failures.failed(exc)
        else:
            failures.succeeded()
        await asyncio.sleep(interval_s)


async def _expire_leases(
    activity: Activity, buckets: BucketStore, holdings: AgentHoldings, interval_s: float
) -> None:
    """Move the balance of agents whose lease ran out into doubt (docs/agents.md, Leases): of the
    active budgets, those agents hold (a page's agent sets read in one pipeline)."""

    async def held_by_agents() -> list[str]:
        active = await activity.active()
        held: list[str] = []
        for start in range(0, len(active), GAUGE_PAGE):
            page = active[start : start + GAUGE_PAGE]
            held += [
                b for b, agents in zip(page, await buckets.agent_holders_many(page), strict=True) if agents
            ]
        return held

    await _every_budget("leases", held_by_agents, holdings.expire_due, interval_s)


async def _refresh_gauges(activity: Activity, auditor: Auditor, interval_s: float) -> None:
    """Keep the per-budget gauges of active budgets current between audits (each audit also sets
    them), a page of budgets audited together; a budget that left the active set leaves the
    metrics too."""
    failures = LoopFailures("gauges")
    while True:
        try:
            active = await activity.active()
            BUDGETS.track(active)
            for start in range(0, len(active), GAUGE_PAGE):
                page = active[start : start + GAUGE_PAGE]
                try:
                    await auditor.audit_many(page)
                except Exception:
                    for budget_id in page:  # one by one: a budget that cannot be read stops no other
                        try:
                            await auditor.audit(budget_id, attempts=1)
                        except Exception as exc:
                            failures.failed(exc, budget_id)
        except Exception as exc:
            failures.failed(exc)
        else:
            failures.succeeded()
        await asyncio.sleep(interval_s)


def _transport(settings: Settings) -> str:
    if not settings.tls_cert_file:
        return "plaintext"
    tls = "mutual TLS" if settings.tls_client_ca_file else "TLS"
    return f"{tls}, {'access file ' + settings.access_file if settings.access_file else 'no access control'}"


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain."""
    center = await start(settings)
    log.info(
        "quota center listening: gRPC %s:%d (%s), metrics :%s%s",
        settings.grpc_host,
        center.port,
        _transport(settings),
        center.metrics_port,
        "" if center.token_port is None else f", bearer tokens on :{center.token_port}",
    )
    await until_stopped()
    log.info("draining (grace %.1fs)", settings.drain_grace_s)
    await center.stop()
    log.info("stopped")
