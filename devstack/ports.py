"""Loopback ports: the one ``free_port`` of the project, and waits on a port.

Every server devstack starts listens on 127.0.0.1 only, so nothing is exposed beyond the machine.
"""

from __future__ import annotations

import socket
import threading
import time

from .errors import StackError

LOOPBACK = "127.0.0.1"

# Ports handed out but perhaps not bound yet: never hand the same one out twice in a process,
# since a cluster or a stack asks for several before any server binds them.
_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the caller may still lose a race)."""
    with _ports_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise StackError("no free loopback port found")


def port_open(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_listening(port: int, timeout: float = 30.0, host: str = LOOPBACK) -> None:
    """Return once something accepts connections on ``port``; StackError after ``timeout`` seconds.

    For servers without a health service (the grpcio comparison registers the bare servicer).
    """
    deadline = time.monotonic() + timeout
    while not port_open(port, host):
        if time.monotonic() > deadline:
            raise StackError(f"no server on {host}:{port} after {timeout:g}s")
        time.sleep(0.1)
