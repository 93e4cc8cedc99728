"""A tiny blocking Redis client (RESP2) for probing the servers devstack starts.

devstack pings and inspects servers while starting them; a dozen lines of protocol keep that
independent of redis-py's version, its warnings and its connection pools.
"""

from __future__ import annotations

import socket
from typing import BinaryIO, TypeAlias

from .ports import LOOPBACK

Reply: TypeAlias = "bytes | int | list[Reply] | None"


class RedisReplyError(Exception):
    """The server answered with an error reply (-ERR ..., -LOADING ...)."""


def redis_command(port: int, *args: str | bytes | int, host: str = LOOPBACK, timeout: float = 5.0) -> Reply:
    """Send one command on a new connection and return the decoded reply."""
    parts = [arg if isinstance(arg, bytes) else str(arg).encode() for arg in args]
    payload = b"".join([b"*%d\r\n" % len(parts), *(b"$%d\r\n%b\r\n" % (len(p), p) for p in parts)])
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(payload)
        with sock.makefile("rb") as stream:
            return _read_reply(stream)


def _read_reply(stream: BinaryIO) -> Reply:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed in the middle of a reply")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body
    if kind == b"-":
        raise RedisReplyError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        return None if size < 0 else stream.read(size + 2)[:-2]
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_reply(stream) for _ in range(count)]
    raise ConnectionError(f"unexpected reply type {kind!r}")


def ping(port: int, host: str = LOOPBACK) -> bool:
    """Whether a Redis server answers PING with PONG (a loading server does not)."""
    try:
        return redis_command(port, "PING", host=host, timeout=1.0) == b"PONG"
    except (OSError, RedisReplyError):
        return False


def info_fields(text: bytes) -> dict[str, str]:
    """The key:value lines of an INFO or CLUSTER INFO reply."""
    fields: dict[str, str] = {}
    for line in text.decode().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields
