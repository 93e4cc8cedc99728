"""Mutual TLS for tests: a throwaway CA (devstack.certs.Pki), the access file the tests' identities
are granted by, and the settings and channel credentials of servers and clients that use them.

``secured(tls)`` makes it the transport of every center, agent and client the helpers build
(``center_settings``, ``agent_settings``, ``agent_process``, ``Client``, ``AgentClient``) until it
exits: the end-to-end tests run once in plaintext and once so (tests/e2e/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from devstack.certs import Issued, Pki, access_file
from quota_rules.access import token_digest

# The identity the helpers' clients present: every role, every budget.
TESTER = "tester"
# A bearer token mapped to the admin "ops" (tests of the token listener).
OPS_TOKEN = "ops-token-for-tests-only"

ACCESS = access_file(
    {
        TESTER: (["admin", "spender", "reader"], ["*"]),
        "ops": (["admin"], []),
        "checkout": (["spender"], ["shop-*", "coupons"]),
        "watcher": (["reader"], []),
    },
    # The end-to-end tests' agent ids begin with their region, or "cold-", "agent-".
    agents=("eu-", "us-", "ap-", "cold-", "agent-"),
    tokens={token_digest(OPS_TOKEN): "ops"},
)


@dataclass
class Tls:
    pki: Pki
    server: Issued
    access_file: Path

    @classmethod
    def create(cls, directory: Path) -> Tls:
        pki = Pki(directory)
        access = directory / "access.toml"
        access.write_text(ACCESS)
        return cls(pki, pki.server(), access)

    def listener(self) -> dict[str, str]:
        """A listener's settings (center or agent), by field name: mutual TLS and the access file."""
        return {
            "tls_cert_file": str(self.server.cert),
            "tls_key_file": str(self.server.key),
            "tls_client_ca_file": str(self.pki.ca_cert),
            "access_file": str(self.access_file),
        }

    def agent(self, agent_id: str) -> dict[str, str]:
        """An agent's settings: its own listener, and its certificate for the center."""
        mine = self.pki.client(agent_id)
        return {
            **self.listener(),
            "center_ca_file": str(self.pki.ca_cert),
            "center_cert_file": str(mine.cert),
            "center_key_file": str(mine.key),
        }

    def credentials(self, identity: str = TESTER) -> grpc.ChannelCredentials:
        mine = self.pki.client(identity)
        return grpc.ssl_channel_credentials(
            root_certificates=self.pki.ca_cert.read_bytes(),
            private_key=mine.key.read_bytes(),
            certificate_chain=mine.cert.read_bytes(),
        )

    def server_only(self) -> grpc.ChannelCredentials:
        """TLS that checks the server and presents no certificate (a token caller)."""
        return grpc.ssl_channel_credentials(root_certificates=self.pki.ca_cert.read_bytes())


_active: Tls | None = None


def active() -> Tls | None:
    """The TLS every helper uses now, or None for plaintext."""
    return _active


@contextmanager
def secured(tls: Tls | None) -> Iterator[None]:
    global _active
    before, _active = _active, tls
    try:
        yield
    finally:
        _active = before


def channel(target: str, options: list[tuple[str, int]] | None = None) -> grpc.aio.Channel:
    """An aio channel to ``target``: with the tester's certificate while ``secured``."""
    tls = _active
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls.credentials(), options=options)
