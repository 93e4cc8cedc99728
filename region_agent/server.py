"""Assembles an agent: journal, record log, core, the channel to the center, the gRPC server, metrics, session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from http.server import HTTPServer

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from quota.v1 import common_pb2, quota_pb2, quota_pb2_grpc
from quota_rules.decoding import add_servicer
from quota_rules.guard import Guard
from quota_rules.listeners import HealthListener, listen, load_security, warnings
from quota_rules.loops import until_stopped
from quota_rules.tls import TlsError, channel_credentials, load_certificates, load_key_pair
from region_agent.api import QuotaServicer
from region_agent.core.agent import Agent, Config
from region_agent.core.refill import RefillRules
from region_agent.forward import CenterClient
from region_agent.metrics import Metrics
from region_agent.readiness import Facts, ready, spendable, why_not
from region_agent.session import Clock, Session, monotonic_ms
from region_agent.settings import PREFIX, Settings, SettingsError
from region_agent.storage.journal import Journal
from region_agent.storage.record_log import RecordLog, path_for

log = logging.getLogger(__name__)

SERVICE_NAMES = [quota_pb2.DESCRIPTOR.services_by_name["Quota"].full_name]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# The names a Kubernetes gRPC probe asks for (docs/center.md#probes).
LIVENESS = "liveness"
READINESS = "readiness"


@dataclass
class RunningAgent:
    """A running agent: its ports and its parts."""

    settings: Settings
    server: grpc.aio.Server
    port: int
    agent: Agent
    journal: Journal
    channel: grpc.aio.Channel
    session: Session
    health: health.aio.HealthServicer
    metrics: Metrics
    metrics_port: int | None = None
    metrics_http: HTTPServer | None = None
    record_log: RecordLog | None = None
    watcher: asyncio.Task[None] | None = None  # keeps liveness and readiness current
    health_listener: HealthListener | None = None  # REGION_AGENT_HEALTH_PORT: probes without TLS
    _readiness: int = field(default=NOT_SERVING, init=False)  # as last set, to log changes

    async def check(self) -> None:
        """Set liveness and readiness from the loops, the session, the slices and the journal."""
        await self.health.set(LIVENESS, SERVING if self.session.running() else NOT_SERVING)
        facts = Facts(
            journal_intact=self.journal.intact(),
            session_up=self.session.connected.is_set(),
            spendable_slices=spendable(self.agent.slices(), self.session.clock()),
        )
        status = SERVING if ready(facts) else NOT_SERVING
        if status != self._readiness:
            if status == NOT_SERVING:
                log.warning("not ready: %s", why_not(facts))
            else:
                log.info("ready")
            self._readiness = status
        for name in ["", READINESS, *SERVICE_NAMES]:
            await self.health.set(name, status)

    async def watch(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("health check failed")
            await asyncio.sleep(self.settings.health_interval_ms / 1000)

    async def stop(self, grace_s: float | None = None, delay_s: float | None = None) -> None:
        """Drain: readiness NOT_SERVING, keep serving for the shutdown delay (Kubernetes takes the
        pod out of its Service meanwhile), refuse new calls, let in-flight ones finish, then close."""
        if self.watcher is not None:
            self.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watcher
        for name in ["", READINESS, *SERVICE_NAMES]:
            await self.health.set(name, NOT_SERVING)
        delay_s = self.settings.shutdown_delay_ms / 1000 if delay_s is None else delay_s
        if delay_s > 0:
            log.info("not ready; serving %.1fs more before draining", delay_s)
            await asyncio.sleep(delay_s)
        await self.server.stop(self.settings.drain_grace_s if grace_s is None else grace_s)
        await self.session.close()
        await self.channel.close()
        if self.metrics_http is not None:
            self.metrics_http.shutdown()
            self.metrics_http.server_close()
        if self.record_log is not None:
            self.record_log.close()
        if self.health_listener is not None:
            await self.health_listener.stop()
        self.journal.close()  # last: every counter written, the lock released


def config_for(settings: Settings, clock: Clock) -> Config:
    return Config(
        retention_ms=settings.retention_s * 1000,
        max_records=settings.max_records,
        reservation_ttl_ms=settings.reservation_ttl_ms,
        reservation_max_ttl_ms=settings.reservation_max_ttl_ms,
        unix_offset_ms=time.time_ns() // 1_000_000 - clock(),
        rules=RefillRules(
            refill_horizon_ms=settings.refill_horizon_ms,
            low_watermark_pct=settings.low_watermark_pct,
            lead_ms=2 * settings.refill_interval_ms,
            release_idle_ms=settings.release_idle_ms,
            keep=settings.release_keep,
            rate_half_life_ms=settings.rate_half_life_ms,
        ),
    )


async def start(settings: Settings, *, metrics: bool = True, clock: Clock = monotonic_ms) -> RunningAgent:
    """Open the journal and the record log (refusing ones in use or damaged), serve, connect to the center."""
    security = load_security(PREFIX, settings)
    center_tls = _center_tls(settings)
    journal = Journal(settings.journal_path)
    record_log: RecordLog | None = None
    try:
        config = config_for(settings, clock)
        record_log = RecordLog(
            path_for(settings.journal_path),
            journal,
            capacity=settings.record_capacity,
            unix_offset_ms=config.unix_offset_ms,
        )
        agent = Agent(journal, config, now=clock(), record_log=record_log)
        stats = Metrics()
        stats.calls.ok_sample, stats.calls.per_s = settings.log_ok_sample, settings.log_calls_per_s
        # gRPC's own reconnect backoff grows to two minutes; the session's backoff (capped at
        # reconnect_max_ms) decides when to try again, so the channel must not wait longer.
        options: list[tuple[str, str | int]] = [
            ("grpc.initial_reconnect_backoff_ms", settings.reconnect_min_ms),
            ("grpc.min_reconnect_backoff_ms", settings.reconnect_min_ms),
            ("grpc.max_reconnect_backoff_ms", settings.reconnect_max_ms),
        ]
        if settings.center_server_name:
            options.append(("grpc.ssl_target_name_override", settings.center_server_name))
        channel = (
            grpc.aio.insecure_channel(settings.center_target, options=options)
            if center_tls is None
            else grpc.aio.secure_channel(settings.center_target, center_tls, options=options)
        )
        session = Session(agent, channel, settings, stats, clock=clock)
        stats.watch(
            agent,
            clock,
            lambda: session.heartbeat_answered,
            session.connected.is_set,
            settings.metrics_budgets,
        )
        center = CenterClient(channel, settings.center_target, settings.forward_deadline_ms)
        server = grpc.aio.server()
        servicer = QuotaServicer(
            agent,
            center,
            stats,
            clock,
            ask=session.request_slice,
            ask_soon=session.ask_when_short,
            wait=session.slice_arrival,
            wait_s=settings.slice_wait_ms / 1000,
        )
        # Plaintext identifies nobody: no guard, and no cost on the request path.
        guard = Guard(security.policy, on_denied=stats.access_denied) if security.tls else None
        add_servicer(quota_pb2_grpc.add_QuotaServicer_to_server, servicer, server, guard)
        checks = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checks, server)
        reflection.enable_server_reflection(
            [
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        port = listen(server, f"{settings.grpc_host}:{settings.grpc_port}", security)
        for warning in warnings(security, f"{settings.grpc_host}:{port}", token_listener=False):
            log.warning(warning)
        if center_tls is None:
            log.warning("PLAINTEXT to the center at %s: set %sCENTER_CA_FILE", settings.center_target, PREFIX)
        # Not ready until the first check after the session started (RunningAgent.check).
        await checks.set(LIVENESS, SERVING)
        for name in ["", READINESS, *SERVICE_NAMES]:
            await checks.set(name, NOT_SERVING)
        await server.start()
    except BaseException:
        if record_log is not None:
            record_log.close()
        journal.close()
        raise
    running = RunningAgent(
        settings, server, port, agent, journal, channel, session, checks, stats, record_log=record_log
    )
    if settings.health_port >= 0:
        running.health_listener = HealthListener(
            lambda s: health_pb2_grpc.add_HealthServicer_to_server(checks, s),
            f"{settings.grpc_host}:{settings.health_port}",
        )
        await running.health_listener.start()
    if metrics:
        http, _ = start_http_server(settings.metrics_port, addr=settings.grpc_host, registry=stats.registry)
        running.metrics_port, running.metrics_http = http.server_port, http
    session.start()
    await running.check()  # ready at once if it holds slices it may spend, or once connected
    running.watcher = asyncio.create_task(running.watch())
    _ = common_pb2  # the shared messages are part of the reflected file set
    return running


def _center_tls(settings: Settings) -> grpc.ChannelCredentials | None:
    """TLS to the center, or None for plaintext; the client certificate must name this agent,
    since the center lets it speak for no other (README, Security)."""
    if not settings.center_ca_file:
        if settings.center_cert_file or settings.center_key_file:
            raise SettingsError(f"{PREFIX}CENTER_CERT_FILE needs {PREFIX}CENTER_CA_FILE (TLS to the center)")
        return None
    if bool(settings.center_cert_file) != bool(settings.center_key_file):
        raise SettingsError(
            f"{PREFIX}CENTER_CERT_FILE and {PREFIX}CENTER_KEY_FILE are set together or not at all"
        )
    try:
        ca = load_certificates(settings.center_ca_file, f"{PREFIX}CENTER_CA_FILE")
        pair = (
            load_key_pair(
                settings.center_cert_file, settings.center_key_file, f"{PREFIX}CENTER_CERT_FILE/_KEY_FILE"
            )
            if settings.center_cert_file
            else None
        )
    except TlsError as exc:
        raise SettingsError(str(exc)) from None
    if pair is not None and pair.common_name != settings.agent_id:
        raise SettingsError(
            f"{PREFIX}CENTER_CERT_FILE names {pair.common_name!r}, but this agent is {settings.agent_id!r}:"
            " the center accepts an agent's session only under the id its certificate names"
        )
    return channel_credentials(ca, pair)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain."""
    running = await start(settings)
    log.info(
        "region agent %s (%s) listening: gRPC %s:%d, metrics :%s, center %s",
        settings.agent_id,
        settings.region,
        settings.grpc_host,
        running.port,
        running.metrics_port,
        settings.center_target,
    )
    await until_stopped()
    log.info("draining (grace %.1fs)", settings.drain_grace_s)
    await running.stop()
    log.info("stopped")
