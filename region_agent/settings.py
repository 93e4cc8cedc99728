"""Settings of the agent process, read from ``REGION_AGENT_*`` environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from quota_rules.env import SettingsError as SettingsError  # raised by load()
from quota_rules.env import check_common, describe_env, from_env, unknown
from quota_rules.limits import InvalidInput, check_agent_id

PREFIX = "REGION_AGENT_"


@dataclass(frozen=True, slots=True)
class Settings:
    # Required, and stable across restarts: a restarted agent reports under the same id.
    agent_id: str = ""
    region: str = "local"
    center_target: str = "127.0.0.1:50051"
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50061
    metrics_port: int = 9465
    # A plaintext port serving the health service alone, for Kubernetes' gRPC probes (which speak
    # no TLS); -1: none (the health service is on the gRPC port, as always).
    health_port: int = -1
    # TLS and access control of the agent's own listener, as at the center (README, "Security").
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    access_file: str = ""
    # TLS to the center: the CA its certificate is checked against (empty: plaintext), and this
    # agent's client certificate, whose common name must be the agent id.
    center_ca_file: str = ""
    center_cert_file: str = ""
    center_key_file: str = ""
    # The name the center's certificate must carry, when center_target is an address it does not name.
    center_server_name: str = ""
    # The counters that survive a kill; one file per agent (it is locked while in use).
    journal_path: str = "region-agent.journal"
    # Entries of the request record ring next to the journal (<journal_path>.records, 256 bytes each).
    record_capacity: int = 1_000_000
    # How long request ids and their answers are remembered, and how many at most.
    retention_s: int = 7 * 24 * 3600
    max_records: int = 1_000_000
    # Slices are checked this often for a refill (below the low watermark) or a release.
    refill_interval_ms: int = 100
    refill_horizon_ms: int = 2000
    low_watermark_pct: int = 25
    rate_half_life_ms: int = 2000
    # A budget with no spending for this long gives back all but release_keep units.
    release_idle_ms: int = 10_000
    release_keep: int = 1
    # A forwarded call (or a SliceRequest) not answered within this gets UNAVAILABLE.
    forward_deadline_ms: int = 2000
    # A request the slice cannot cover while a slice for its budget is on its way waits this
    # long for it before going to the center (0: never waits).
    slice_wait_ms: int = 100
    # After the stream to the center fails: exponential backoff with jitter between these.
    reconnect_min_ms: int = 100
    reconnect_max_ms: int = 3000
    reservation_ttl_ms: int = 300_000
    reservation_max_ttl_ms: int = 24 * 3600 * 1000
    drain_grace_s: float = 10.0
    # On SIGTERM: not ready at once, then serving this long before the drain (Kubernetes takes the
    # pod out of its Service's endpoints meanwhile).
    shutdown_delay_ms: int = 5000
    # asyncio or uvloop (installed separately: pip install uvloop).
    # How often liveness and readiness are decided again (docs/agents.md#probes).
    health_interval_ms: int = 1000
    # Budgets with series of their own in /metrics (the most recently used); the rest are added up.
    metrics_budgets: int = 100
    event_loop: str = "asyncio"
    log_level: str = "INFO"
    # text, or json: one object a line with each call's fields (quota_rules/logs.py).
    log_format: str = "text"
    # Calls logged: every failed or refused one, at most LOG_CALLS_PER_S a second for each method
    # and code (the rest counted on the next line), and this fraction of the successful ones.
    log_ok_sample: float = 0.001
    log_calls_per_s: int = 10


HELP: dict[str, str] = {
    "agent_id": "this agent's id, required and stable across restarts (1-64 letters, digits, '.', '_', '-')",
    "region": "the region this agent serves (reported to the center)",
    "center_target": "host:port of the center's gRPC server",
    "grpc_host": "address the gRPC server binds",
    "grpc_port": "gRPC port (0 picks a free port)",
    "metrics_port": "Prometheus /metrics port (0 picks a free port)",
    "health_port": "plaintext port serving only the gRPC health service, for probes that speak no TLS (-1: none)",
    "tls_cert_file": "PEM certificate (chain) of the agent's gRPC listener; empty: plaintext (development only)",
    "tls_key_file": "PEM private key of that certificate",
    "tls_client_ca_file": "PEM CA bundle that signs callers' certificates: mutual TLS, a certificate required",
    "access_file": "TOML file granting roles to identities (README, Security); empty: no access control",
    "center_ca_file": "PEM CA bundle the center's certificate is checked against; empty: plaintext to the center",
    "center_cert_file": "this agent's client certificate for the center (its common name is the agent id)",
    "center_key_file": "PEM private key of that certificate",
    "center_server_name": "name to check the center's certificate for, if center_target does not carry it",
    "journal_path": "memory-mapped file of the cumulative counters; keep it across restarts",
    "record_capacity": "entries (256 bytes each) of <journal_path>.records: a retry after a restart is"
    " recognised while its record is among the last this many written and within retention",
    "retention_s": "seconds request ids and their answers are remembered",
    "max_records": "most request records kept in memory (the oldest go first)",
    "refill_interval_ms": "how often slices are checked for a refill or a release",
    "refill_horizon_ms": "a slice should cover this long at the observed rate",
    "low_watermark_pct": "ask for a refill below this percentage of that slice",
    "rate_half_life_ms": "half-life of the observed demand rate reported to the center",
    "release_idle_ms": "a budget without spending for this long gives its surplus back",
    "release_keep": "units an idle budget keeps for the next request",
    "forward_deadline_ms": "deadline of a call forwarded to the center",
    "slice_wait_ms": "longest wait for a slice on its way before a request goes to the center (0: none)",
    "reconnect_min_ms": "first wait before reconnecting to the center",
    "reconnect_max_ms": "longest wait between reconnection attempts",
    "reservation_ttl_ms": "TTL of a reservation that asks for none (ttl_ms 0)",
    "reservation_max_ttl_ms": "longest TTL a reservation may ask for",
    "drain_grace_s": "seconds in-flight calls get to finish on SIGTERM",
    "shutdown_delay_ms": "on SIGTERM, how long the agent keeps serving after it reports not ready, before it drains",
    "health_interval_ms": "how often liveness and readiness are decided again (session, slices, journal)",
    "metrics_budgets": 'budgets with series of their own in /metrics, the most recently used; the rest are added up under budget="_other"',
    "event_loop": "asyncio, or uvloop if installed (pip install uvloop)",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": "text, or json (one object a line, with each logged call's method, code, budget_id, request_id, latency_ms)",
    "log_ok_sample": "fraction of successful calls logged (failed and refused ones are all logged, within LOG_CALLS_PER_S)",
    "log_calls_per_s": "most lines a second for each method and result code; the next line says how many were left out",
}


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from an environment mapping (``os.environ`` by default), defaults for what is unset."""
    settings = from_env(Settings, PREFIX, env)
    check(settings)
    return settings


def check(s: Settings) -> None:
    """Raise SettingsError for settings the agent cannot run with."""
    check_common(s, PREFIX)
    if not s.agent_id:
        raise SettingsError(f"{PREFIX}AGENT_ID is required: a stable id, the same across restarts")
    try:
        check_agent_id(s.agent_id)  # the center's rule: the id names its holder and Redis keys
    except InvalidInput as e:
        raise SettingsError(f"{PREFIX}AGENT_ID: {e}") from None
    positive = (
        "refill_interval_ms",
        "forward_deadline_ms",
        "reconnect_min_ms",
        "max_records",
        "retention_s",
        "record_capacity",
        "health_interval_ms",
        "rate_half_life_ms",
        "refill_horizon_ms",
    )
    for name in positive:
        if getattr(s, name) <= 0:
            raise SettingsError(f"{PREFIX}{name.upper()} must be positive, got {getattr(s, name)}")
    if s.slice_wait_ms < 0:
        raise SettingsError(f"{PREFIX}SLICE_WAIT_MS must not be negative, got {s.slice_wait_ms}")
    if s.reconnect_max_ms < s.reconnect_min_ms:
        raise SettingsError(f"{PREFIX}RECONNECT_MAX_MS must be at least {PREFIX}RECONNECT_MIN_MS")
    if not 0 <= s.low_watermark_pct <= 100:
        raise SettingsError(f"{PREFIX}LOW_WATERMARK_PCT must be 0..100, got {s.low_watermark_pct}")


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """Warnings for ``REGION_AGENT_*`` variables that name no setting."""
    return unknown(Settings, PREFIX, env)


def describe() -> str:
    """The variables with their defaults, for ``--help``."""
    return describe_env(Settings, PREFIX, HELP, required=("agent_id",))
