"""TLS material for the gRPC listeners and channels of both processes, read and checked at start.

grpcio reports a bad certificate or key only at the first handshake, with a generic message; here
each file is parsed when the process starts, and a certificate whose key does not match it is
refused, so that a wrong path or a swapped file is a clear start-up error instead.

grpcio (Python) offers two server modes only: no client certificate, or one required and verified
against the client CA. A listener with a client CA therefore turns away a caller without a
certificate at the handshake (the caller sees UNAVAILABLE); callers that hold no certificate use a
bearer token on a listener without a client CA (README, "Security").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID


class TlsError(ValueError):
    """A TLS file cannot be used; the message names the setting and the file."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    cert: bytes  # PEM chain, the leaf first
    key: bytes  # PEM private key

    @property
    def common_name(self) -> str:
        return common_name(self.cert)


def read_pem(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"{what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise TlsError(f"{what} {path}: not a PEM file")
    return data


def load_certificates(path: str, what: str) -> bytes:
    """A PEM bundle of one or more certificates (a CA, or a chain)."""
    data = read_pem(path, what)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TlsError(f"{what} {path}: not a PEM certificate ({exc})") from None
    return data


def load_key_pair(cert_path: str, key_path: str, what: str) -> KeyPair:
    """A certificate (chain) and its private key; refused if the key is not the certificate's."""
    cert = load_certificates(cert_path, f"{what} certificate")
    key = read_pem(key_path, f"{what} key")
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(f"{what} key {key_path}: not an unencrypted PEM private key ({exc})") from None
    leaf = x509.load_pem_x509_certificates(cert)[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if private.public_key().public_bytes(der, public) != leaf.public_key().public_bytes(der, public):
        raise TlsError(f"{what} key {key_path} is not the key of the certificate {cert_path}")
    return KeyPair(cert, key)


def common_name(cert_pem: bytes) -> str:
    """The subject common name of the first certificate: the identity it gives its holder."""
    leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def server_credentials(pair: KeyPair, client_ca: bytes | None) -> grpc.ServerCredentials:
    """TLS for a listener; with ``client_ca``, every caller must present a certificate it signed."""
    return grpc.ssl_server_credentials(
        [(pair.key, pair.cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def channel_credentials(ca: bytes, pair: KeyPair | None) -> grpc.ChannelCredentials:
    """TLS for a channel: the server is verified against ``ca``; ``pair`` is the client certificate."""
    if pair is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=pair.key, certificate_chain=pair.cert
    )
