"""Settings of the center process, read from ``QUOTA_CENTER_*`` environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from quota_rules.env import SettingsError as SettingsError  # raised by load()
from quota_rules.env import check_common, describe_env, from_env, unknown

PREFIX = "QUOTA_CENTER_"


@dataclass(frozen=True, slots=True)
class Settings:
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50051
    metrics_port: int = 9464
    # TLS and access control (README, "Security"). No certificate: plaintext, for local
    # development only (a warning at start). A client CA: every caller presents a certificate it
    # signed (mutual TLS). The access file grants roles to identities; without one, any caller that
    # reaches the port may do everything.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    access_file: str = ""
    # A second TLS listener without client certificates, for callers with a bearer token only
    # (quotactl on a laptop); -1: none.
    token_port: int = -1
    # A plaintext port serving the health service alone, for Kubernetes' gRPC probes (which speak
    # no TLS); -1: none (the health service is on the gRPC port, as always).
    health_port: int = -1
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    # How long request ids, their records and credit markers are kept: a retry after
    # this window is treated as a new request.
    retention_s: int = 7 * 24 * 3600
    # Redis keeps a request's claim and record this long (retries in flight, concurrent duplicates);
    # after it, the seen filters and the spend log answer a retry (docs/center.md#request-ids).
    request_window_s: int = 600
    # Pending transfers older than this are resolved by the sweeper from the ledger.
    transfer_stale_ms: int = 5000
    # Half the stale age: a pass reads the pending transfers of every active budget's buckets,
    # a few thousand Redis commands a second with hundreds of budgets in use if run every second.
    sweep_interval_ms: int = 2500
    ledger_batch_max: int = 512
    ledger_batch_wait_ms: float = 1.0
    ledger_pool_size: int = 10
    # Default sub-bucket count of budgets created without one.
    default_sub_buckets: int = 4
    health_interval_ms: int = 1000
    # Per-budget gauges (remaining, consumed, in doubt) are recomputed this often.
    gauge_interval_s: float = 15.0
    # Budgets with series of their own in /metrics (the most active); the rest are added up.
    metrics_budgets: int = 100
    # A budget with nothing pending that nothing happened to for this long leaves the active set
    # the background loops walk (and its per-budget series leave the metrics); checked this often.
    idle_after_ms: int = 60_000
    activity_interval_ms: int = 5_000
    # On SIGTERM: health turns NOT_SERVING, then in-flight calls get this long to finish.
    drain_grace_s: float = 10.0
    # On SIGTERM: not ready at once, then serving this long before the drain, so that Kubernetes
    # takes the pod out of its Service's endpoints before it stops answering.
    shutdown_delay_ms: int = 5000
    # The filler tops up sub-buckets before they run dry and takes back what idle ones hold.
    fill_interval_ms: int = 100
    fill_idle_ms: int = 10_000
    # Observed demand (which sizes slices) halves after this long without consumption.
    rate_half_life_ms: int = 2_000
    # A reservation that asks for no TTL (ttl_ms 0) is held this long; longer asks than
    # the maximum are refused. Held reservations are bucket state, not cache: they keep
    # no Redis TTL of their own, whatever these are.
    reservation_ttl_ms: int = 300_000
    reservation_max_ttl_ms: int = 24 * 3600 * 1000
    # How often reservations past their TTL are released (a late confirm or cancel
    # releases its own one at once).
    expiry_interval_ms: int = 1000
    # Write-behind spend log (settles lost sub-buckets after a Redis loss): served deductions and
    # returns are written this often, or as soon as this many wait; an idle center still reports
    # how far it has written every heartbeat.
    writebehind_interval_ms: int = 50
    writebehind_batch: int = 1000
    writebehind_heartbeat_ms: int = 200
    # A center whose spend log has not reached PostgreSQL for this long stops spending.
    writebehind_lease_ms: int = 30_000
    # A center silent for this long (lease plus a margin for Redis calls still in flight) is
    # taken for gone: it no longer holds back generations that began after it fell silent.
    instance_dead_after_ms: int = 90_000
    # After a rebuild, the first spend-log lookup waits at most this long for live centers' logs.
    recall_gate_ms: int = 2_000
    # 1: return what a lost sub-bucket did not consume to main once its spend log is complete;
    # 0: leave it in doubt for a manual Settle.
    settle_release: int = 1
    # Region agents (docs/agents.md): long leases and short heartbeats, so that regions keep
    # serving from their slices through a center outage of minutes.
    agent_lease_ms: int = 300_000
    agent_heartbeat_ms: int = 1_000
    # An agent's balance goes in doubt only this long after its lease ran out at the center.
    agent_lease_skew_ms: int = 30_000
    # How long a request that needs budget held by agents waits for their reclaim answers.
    agent_reclaim_timeout_ms: int = 1_000
    agent_expiry_interval_ms: int = 1_000
    # Answers an agent session may leave unread before it is closed (RESOURCE_EXHAUSTED).
    agent_session_max_unread: int = 1_024
    # asyncio or uvloop (installed separately: pip install uvloop).
    event_loop: str = "asyncio"
    log_level: str = "INFO"
    # text, or json: one object a line with each call's fields (quota_rules/logs.py).
    log_format: str = "text"
    # Calls logged: every failed or refused one, at most LOG_CALLS_PER_S a second for each method
    # and code (the rest counted on the next line), and this fraction of the successful ones.
    log_ok_sample: float = 0.001
    log_calls_per_s: int = 10


HELP: dict[str, str] = {
    "grpc_host": "address the gRPC server binds",
    "grpc_port": "gRPC port (0 picks a free port)",
    "metrics_port": "Prometheus /metrics port (0 picks a free port)",
    "tls_cert_file": "PEM certificate (chain) of the gRPC listeners; empty: plaintext (development only)",
    "tls_key_file": "PEM private key of that certificate",
    "tls_client_ca_file": "PEM CA bundle that signs client certificates: mutual TLS, a certificate required",
    "access_file": "TOML file granting roles to identities (README, Security); empty: no access control",
    "token_port": "port of a TLS listener for bearer-token callers, without client certificates (-1: none)",
    "health_port": "plaintext port serving only the gRPC health service, for probes that speak no TLS (-1: none)",
    "redis_url": "Redis URL: redis://host:port/db for one server, redis+cluster://host:port[,host:port...] for a Redis Cluster",
    "database_url": "PostgreSQL DSN of the ledger",
    "retention_s": "seconds request ids and their answers are remembered (Redis, then the spend log)",
    "request_window_s": "seconds Redis keeps a request's claim and record; older retries are answered from the spend log",
    "transfer_stale_ms": "age after which the sweeper resolves a pending transfer",
    "sweep_interval_ms": "how often the sweeper runs",
    "ledger_batch_max": "most ledger rows written in one group commit",
    "ledger_batch_wait_ms": "longest a ledger row waits for its batch to fill",
    "ledger_pool_size": "PostgreSQL connections",
    "default_sub_buckets": "sub-buckets of a budget created without a policy value",
    "gauge_interval_s": "how often the per-budget gauges are recomputed",
    "metrics_budgets": 'budgets with series of their own in /metrics, the most active; the rest are added up under budget="_other"',
    "idle_after_ms": "a budget with nothing pending and no activity for this long leaves the background loops (docs/center.md#activity)",
    "activity_interval_ms": "how often idle budgets are looked for",
    "health_interval_ms": "how often Redis and PostgreSQL are checked for the health service",
    "drain_grace_s": "seconds in-flight calls get to finish on SIGTERM",
    "shutdown_delay_ms": "on SIGTERM, how long the center keeps serving after it reports not ready, before it drains",
    "fill_interval_ms": "how often sub-buckets are topped up from main in the background (0 turns it off)",
    "fill_idle_ms": "a sub-bucket that consumed nothing for this long gives its surplus back to main",
    "rate_half_life_ms": "half-life of the observed demand rates that size slices",
    "reservation_ttl_ms": "TTL of a reservation that asks for none (ttl_ms 0)",
    "reservation_max_ttl_ms": "longest TTL a reservation may ask for",
    "expiry_interval_ms": "how often reservations past their TTL are released",
    "writebehind_interval_ms": "how often served deductions and returns are written to the spend log",
    "writebehind_batch": "spend-log entries that trigger a write at once, and most per INSERT",
    "writebehind_heartbeat_ms": "how often an idle center reports how far it has written its spend log",
    "writebehind_lease_ms": "a center whose spend log cannot be written for this long stops spending",
    "instance_dead_after_ms": "a center silent for this long is taken for gone by the settlement",
    "recall_gate_ms": "longest wait for other centers' spend logs before the first lookup after a rebuild",
    "settle_release": "1: return the unconsumed part of a lost sub-bucket to main once its log is complete",
    "agent_lease_ms": "lease of an agent's holding, renewed by every heartbeat",
    "agent_heartbeat_ms": "how often agents report and renew (told to them at connection)",
    "agent_lease_skew_ms": "clock-skew margin after a lease before the agent's balance goes in doubt",
    "agent_reclaim_timeout_ms": "longest wait for agents to give back budget a request needs",
    "agent_expiry_interval_ms": "how often agent leases are checked",
    "agent_session_max_unread": "answers an agent session may leave unread before it is closed",
    "event_loop": "asyncio, or uvloop if installed (pip install uvloop)",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": "text, or json (one object a line, with each logged call's method, code, budget_id, request_id, latency_ms)",
    "log_ok_sample": "fraction of successful calls logged (failed and refused ones are all logged, within LOG_CALLS_PER_S)",
    "log_calls_per_s": "most lines a second for each method and result code; the next line says how many were left out",
}


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from an environment mapping (``os.environ`` by default), defaults for what is unset;
    SettingsError (one line, naming the variable) for one the center cannot run with."""
    settings = from_env(Settings, PREFIX, env)
    check(settings)
    return settings


# Loops that sleep this long between passes, and sizes that must hold something: never 0.
POSITIVE = (
    "retention_s",
    "request_window_s",
    "sweep_interval_ms",
    "ledger_batch_max",
    "ledger_pool_size",
    "default_sub_buckets",
    "health_interval_ms",
    "gauge_interval_s",
    "activity_interval_ms",
    "rate_half_life_ms",
    "expiry_interval_ms",
    "writebehind_interval_ms",
    "writebehind_batch",
    "writebehind_heartbeat_ms",
    "writebehind_lease_ms",
    "agent_lease_ms",
    "agent_heartbeat_ms",
    "agent_expiry_interval_ms",
    "agent_session_max_unread",
)


def check(s: Settings) -> None:
    """Raise SettingsError for settings the center cannot run with."""
    check_common(s, PREFIX)
    for name in POSITIVE:
        if getattr(s, name) <= 0:
            raise SettingsError(f"{PREFIX}{name.upper()} must be positive, got {getattr(s, name)}")
    if s.instance_dead_after_ms <= s.writebehind_lease_ms:
        # A silent center is taken for gone only once its lease has stopped it from spending.
        raise SettingsError(f"{PREFIX}INSTANCE_DEAD_AFTER_MS must exceed {PREFIX}WRITEBEHIND_LEASE_MS")
    if not s.instance_dead_after_ms < s.request_window_s * 1000 <= s.retention_s * 1000:
        # A served request must be in the spend log before Redis forgets it: a center that cannot
        # write its log stops spending within its lease, and is taken for gone after dead-after.
        raise SettingsError(
            f"{PREFIX}REQUEST_WINDOW_S must exceed {PREFIX}INSTANCE_DEAD_AFTER_MS"
            f" and be at most {PREFIX}RETENTION_S"
        )


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """Warnings for ``QUOTA_CENTER_*`` variables that name no setting."""
    return unknown(Settings, PREFIX, env)


def describe() -> str:
    """The variables with their defaults, for ``--help``."""
    return describe_env(Settings, PREFIX, HELP)
