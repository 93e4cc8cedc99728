"""The security of a process's gRPC listeners, from its settings: TLS material, the access file,
the start-up checks and warnings, and the ports (shared by the center and the agent).

The settings are checked together at start, so that a half-configured listener (a key without a
certificate, an access file on plaintext, where nobody could ever be identified) stops the start
with a message naming the variables instead of serving something else than the operator meant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import grpc

from quota_rules.access import AccessFileError, AccessPolicy
from quota_rules.env import SettingsError
from quota_rules.guard import load_policy
from quota_rules.tls import KeyPair, TlsError, load_certificates, load_key_pair, server_credentials


@dataclass(frozen=True, slots=True)
class Security:
    pair: KeyPair | None  # None: plaintext
    client_ca: bytes | None  # set: mutual TLS, a client certificate required
    policy: AccessPolicy | None  # None: no access control

    @property
    def tls(self) -> bool:
        return self.pair is not None


class ListenerSettings(Protocol):
    """The settings of a listener's security, named alike in both processes' settings."""

    @property
    def tls_cert_file(self) -> str: ...
    @property
    def tls_key_file(self) -> str: ...
    @property
    def tls_client_ca_file(self) -> str: ...
    @property
    def access_file(self) -> str: ...


def load_security(prefix: str, settings: ListenerSettings) -> Security:
    """The listeners' security from the ``<prefix>TLS_*`` and ``<prefix>ACCESS_FILE`` settings."""
    cert_file, key_file = settings.tls_cert_file, settings.tls_key_file
    client_ca_file, access_file = settings.tls_client_ca_file, settings.access_file
    if bool(cert_file) != bool(key_file):
        raise SettingsError(f"{prefix}TLS_CERT_FILE and {prefix}TLS_KEY_FILE are set together or not at all")
    if client_ca_file and not cert_file:
        raise SettingsError(
            f"{prefix}TLS_CLIENT_CA_FILE needs TLS: set {prefix}TLS_CERT_FILE and _KEY_FILE too"
        )
    if access_file and not cert_file:
        raise SettingsError(
            f"{prefix}ACCESS_FILE needs TLS ({prefix}TLS_CERT_FILE and _KEY_FILE): on plaintext no caller"
            " can be identified"
        )
    try:
        pair = load_key_pair(cert_file, key_file, f"{prefix}TLS_CERT_FILE/_KEY_FILE") if cert_file else None
        ca = load_certificates(client_ca_file, f"{prefix}TLS_CLIENT_CA_FILE") if client_ca_file else None
        policy = load_policy(access_file) if access_file else None
    except (TlsError, AccessFileError) as exc:
        raise SettingsError(str(exc)) from None
    return Security(pair, ca, policy)


def warnings(security: Security, address: str, token_listener: bool) -> list[str]:
    """What an operator must hear at start about a listener that is less than secured."""
    if not security.tls:
        return [
            f"PLAINTEXT gRPC on {address}, no TLS and no access control: anyone who reaches this port can"
            " create, top up, close and spend budgets. For local development only (README, Security)."
        ]
    out = []
    if security.policy is None:
        out.append(
            f"no access file: every caller that completes the TLS handshake on {address} may make every"
            " call (README, Security)"
        )
    elif security.policy.tokens and security.client_ca is not None and not token_listener:
        out.append(
            "the access file maps bearer tokens, but every listener requires a client certificate: set a"
            " token port for token callers"
        )
    return out


def listen(
    server: grpc.aio.Server, address: str, security: Security, *, client_certificates: bool = True
) -> int:
    """Add a listener on ``address``; ``client_certificates=False`` leaves out the client CA (the
    token listener). Returns the port bound."""
    if security.pair is None:
        return server.add_insecure_port(address)
    ca = security.client_ca if client_certificates else None
    return server.add_secure_port(address, server_credentials(security.pair, ca))


class HealthListener:
    """A plaintext listener serving the health service alone (``HEALTH_PORT``), for probes that
    speak no TLS: Kubernetes' native gRPC probe cannot, so with TLS on the main port a pod would
    otherwise be probed by TCP only, blind to a dead loop or a lost Redis. It answers only
    ``grpc.health.v1.Health/Check`` and ``Watch``: no budget, no reflection, nothing to guard."""

    def __init__(self, add_health: Callable[[grpc.aio.Server], None], address: str) -> None:
        self.server = grpc.aio.server()
        add_health(self.server)
        self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise SettingsError(f"cannot listen on {address} for the health port")

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop(0)
