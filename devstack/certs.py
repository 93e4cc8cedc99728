"""A throwaway certificate authority for local stacks and tests: a CA, server certificates for
127.0.0.1 and localhost, and client certificates whose common name is the identity they carry.

For development and tests only: the keys are written unencrypted next to the certificates and the
CA signs whatever it is asked. Production certificates come from the operator's own PKI (README,
"Security", shows the openssl commands for the same files).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365
_PEM = serialization.Encoding.PEM


@dataclass(frozen=True, slots=True)
class Issued:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "quota-center devstack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _current(cert: Path) -> bool:
    """Whether ``cert`` exists and stays valid for another day (else it is made anew)."""
    if not cert.exists():
        return False
    until = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    return until > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


class Pki:
    """A CA in ``directory`` (``ca.crt``, ``ca.key``), created on first use and reused after."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_cert = directory / "ca.crt"
        ca_key = directory / "ca.key"
        if _current(self.ca_cert) and ca_key.exists():
            loaded = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
            assert isinstance(loaded, ec.EllipticCurvePrivateKey), f"{ca_key}: not an EC key"
            self._key = loaded
            self._cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
            return
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name("quota-center devstack CA"))
            .issuer_name(_name("quota-center devstack CA"))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self._key, hashes.SHA256())
        )
        _write_key(ca_key, self._key)
        self.ca_cert.write_bytes(self._cert.public_bytes(_PEM))

    def _signed_by_me(self, cert: Path) -> bool:
        return x509.load_pem_x509_certificate(cert.read_bytes()).issuer == self._cert.subject and (
            cert.stat().st_mtime >= self.ca_cert.stat().st_mtime
        )

    def server(self, name: str = "server") -> Issued:
        """A server certificate for 127.0.0.1, ::1 and localhost, as ``<name>.crt``/``.key``."""
        sans: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
        return self._issue(name, "localhost", sans, ExtendedKeyUsageOID.SERVER_AUTH)

    def client(self, identity: str) -> Issued:
        """A client certificate whose common name is ``identity``, as ``<identity>.crt``/``.key``."""
        return self._issue(identity, identity, [], ExtendedKeyUsageOID.CLIENT_AUTH)

    def _issue(
        self, file_name: str, common_name: str, sans: list[x509.GeneralName], usage: x509.ObjectIdentifier
    ) -> Issued:
        issued = Issued(self.dir / f"{file_name}.crt", self.dir / f"{file_name}.key")
        if _current(issued.cert) and issued.key.exists() and self._signed_by_me(issued.cert):
            return issued
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        _write_key(issued.key, key)
        issued.cert.write_bytes(cert.public_bytes(_PEM))
        return issued


# A grant of the access file: (roles, budgets); budgets only for a spender.
Grant = tuple[Sequence[str], Sequence[str]]


def access_file(
    grants: Mapping[str, Grant], *, agents: Sequence[str] = (), tokens: Mapping[str, str] | None = None
) -> str:
    """An access file's TOML (README, "Security"): ``grants`` by identity, the ``agent`` role for
    every id beginning with one of ``agents``, and ``tokens`` (SHA-256 hex -> identity)."""
    lines = ['# Who may do what (README, "Security").']
    entries = [*grants.items(), *((f"{prefix}*", (["agent"], [])) for prefix in agents)]
    for identity, (roles, budgets) in entries:
        lines += ["", f"[identities.{json.dumps(identity)}]", f"roles = {json.dumps(list(roles))}"]
        if budgets:
            lines.append(f"budgets = {json.dumps(list(budgets))}")
    if tokens:
        lines += ["", "[tokens]", *(f"{json.dumps(d)} = {json.dumps(name)}" for d, name in tokens.items())]
    return "\n".join(lines) + "\n"


# The local stack's: "admin" may do everything quotactl does, "spender" spends any budget, and the
# agents of python -m devstack up (eu-1, us-1, ap-1) hold their sessions.
LOCAL_ACCESS = access_file(
    {"admin": (["admin", "spender", "reader"], ["*"]), "spender": (["spender"], ["*"])},
    agents=("eu-", "us-", "ap-"),
)


@dataclass(frozen=True, slots=True)
class LocalTls:
    """The files of a local stack with mutual TLS (``python -m devstack certs``)."""

    ca: Path
    server: Issued
    admin: Issued
    access_file: Path

    def center_env(self) -> dict[str, str]:
        return {
            "QUOTA_CENTER_TLS_CERT_FILE": str(self.server.cert),
            "QUOTA_CENTER_TLS_KEY_FILE": str(self.server.key),
            "QUOTA_CENTER_TLS_CLIENT_CA_FILE": str(self.ca),
            "QUOTA_CENTER_ACCESS_FILE": str(self.access_file),
        }

    def quotactl_args(self) -> list[str]:
        return ["--ca", str(self.ca), "--cert", str(self.admin.cert), "--key", str(self.admin.key)]


def local_tls(directory: Path) -> LocalTls:
    """A CA, the server's certificate, the ``admin`` client's and the access file in ``directory``
    (what exists is kept)."""
    pki = Pki(directory)
    access = directory / "access.toml"
    if not access.exists():
        access.write_text(LOCAL_ACCESS)
    return LocalTls(pki.ca_cert, pki.server(), pki.client("admin"), access)
