"""Assembles an agent: journal, record log, core, the channel to the center, the gRPC server, metrics, session."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from http.server import HTTPServer

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from quota.v1 import common_pb2, quota_pb2, quota_pb2_grpc
from quota_rules.decoding import add_servicer
from quota_rules.loops import until_stopped
from region_agent.api import QuotaServicer
from region_agent.core.agent import Agent, Config
from region_agent.core.refill import RefillRules
from region_agent.forward import CenterClient
from region_agent.metrics import Metrics
from region_agent.session import Clock, Session, monotonic_ms
from region_agent.settings import Settings
from region_agent.storage.journal import Journal
from region_agent.storage.record_log import RecordLog, path_for

log = logging.getLogger(__name__)

SERVICE_NAMES = [quota_pb2.DESCRIPTOR.services_by_name["Quota"].full_name]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


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

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: health NOT_SERVING, refuse new calls, let in-flight ones finish, then close."""
        for name in ["", *SERVICE_NAMES]:
            await self.health.set(name, NOT_SERVING)
        await self.server.stop(self.settings.drain_grace_s if grace_s is None else grace_s)
        await self.session.close()
        await self.channel.close()
        if self.metrics_http is not None:
            self.metrics_http.shutdown()
            self.metrics_http.server_close()
        if self.record_log is not None:
            self.record_log.close()
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
        # gRPC's own reconnect backoff grows to two minutes; the session's backoff (capped at
        # reconnect_max_ms) decides when to try again, so the channel must not wait longer.
        channel = grpc.aio.insecure_channel(
            settings.center_target,
            options=[
                ("grpc.initial_reconnect_backoff_ms", settings.reconnect_min_ms),
                ("grpc.min_reconnect_backoff_ms", settings.reconnect_min_ms),
                ("grpc.max_reconnect_backoff_ms", settings.reconnect_max_ms),
            ],
        )
        session = Session(agent, channel, settings, stats, clock=clock)
        stats.watch(agent, clock, lambda: session.heartbeat_answered)
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
        add_servicer(quota_pb2_grpc.add_QuotaServicer_to_server, servicer, server)
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
        port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
        # Serving from slices needs no center, so the agent is SERVING while it runs.
        for name in ["", *SERVICE_NAMES]:
            await checks.set(name, SERVING)
        await server.start()
    except BaseException:
        if record_log is not None:
            record_log.close()
        journal.close()
        raise
    running = RunningAgent(
        settings, server, port, agent, journal, channel, session, checks, stats, record_log=record_log
    )
    if metrics:
        http, _ = start_http_server(settings.metrics_port, addr=settings.grpc_host, registry=stats.registry)
        running.metrics_port, running.metrics_http = http.server_port, http
    session.start()
    _ = common_pb2  # the shared messages are part of the reflected file set
    return running


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
