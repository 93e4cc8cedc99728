"""The credentials of quotactl's channel: plaintext, TLS, mutual TLS, and a bearer token over TLS."""

from __future__ import annotations

from pathlib import Path

import grpc

from quota_rules.tls import TlsError, channel_credentials, load_certificates, load_key_pair
from quotactl.commands import CtlError
from quotactl.exit_codes import ExitCode


def credentials(ca: str, cert: str, key: str, token_file: str) -> grpc.ChannelCredentials | None:
    """None for plaintext; CtlError (usage) for options that do not go together or unusable files."""
    if not ca:
        if cert or key or token_file:
            raise CtlError(
                "--cert, --key and --token-file need --ca: they are sent over TLS only", ExitCode.USAGE
            )
        return None
    if bool(cert) != bool(key):
        raise CtlError("--cert and --key go together", ExitCode.USAGE)
    try:
        creds = channel_credentials(
            load_certificates(ca, "--ca"), load_key_pair(cert, key, "--cert/--key") if cert else None
        )
    except TlsError as exc:
        raise CtlError(str(exc), ExitCode.USAGE) from None
    if not token_file:
        return creds
    try:
        token = Path(token_file).read_text().strip()
    except OSError as exc:
        raise CtlError(f"--token-file {token_file}: {exc.strerror or exc}", ExitCode.USAGE) from None
    if not token:
        raise CtlError(f"--token-file {token_file} is empty", ExitCode.USAGE)
    return grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
