"""Process plumbing shared by the throwaway servers: ports, temp dirs, start-up waits, cleanup."""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Protocol

LOOPBACK = "127.0.0.1"


class HarnessError(RuntimeError):
    """A throwaway server could not be started or driven."""


# Ports handed out but perhaps not bound yet: never hand the same one out twice in a run,
# since a cluster asks for several before any server binds them.
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
    raise HarnessError("no free loopback port found")


def port_open(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a server log, for error messages."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) or "    (log is empty)"


def log_contains(path: Path, needle: str) -> bool:
    try:
        return needle in path.read_text(errors="replace")
    except OSError:
        return False


def service_user() -> str | None:
    """The OS user PostgreSQL must run as: initdb and postgres refuse to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise HarnessError(
            "running as root, but PostgreSQL refuses root and there is no 'postgres' OS user; "
            "run scripts/install-deps.sh (the postgresql package creates it) or run as a normal user"
        ) from None
    return "postgres"


def _temp_base() -> Path:
    """A temp root that another OS user can traverse (TMPDIR may be a private dir under /root)."""
    base = Path(tempfile.gettempdir()).resolve()
    for part in (base, *base.parents):
        if not part.stat().st_mode & 0o001:
            return Path("/tmp")
    return base


def make_tempdir(prefix: str, owner: str | None = None) -> Path:
    """A fresh private directory, handed to `owner` (an OS user name) when given."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=_temp_base()))
    if owner is not None:
        chown(path, owner)
    return path


def chown(path: Path, owner: str) -> None:
    entry = pwd.getpwnam(owner)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def run_checked(
    argv: Sequence[str], *, what: str, user: str | None = None, cwd: Path | None = None, timeout: float = 120
) -> str:
    """Run a helper command to completion; its output goes into the error when it fails."""
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            check=False,
            user=user,
            group=_gid(user),
            extra_groups=_groups(user),
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{what}: timed out after {timeout}s: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise HarnessError(
            f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{done.stdout}{done.stderr}".rstrip()
        )
    return done.stdout


# Popen drops privileges itself (no preexec_fn, so it is safe with threads); extra_groups=[]
# sheds root's supplementary groups. None everywhere means "stay who we are".
def _gid(user: str | None) -> int | None:
    return None if user is None else pwd.getpwnam(user).pw_gid


def _groups(user: str | None) -> list[int] | None:
    return None if user is None else []


class ServerProcess:
    """One long-running server process whose stdout and stderr go to a log file."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        with log_path.open("ab") as log:
            # A new session keeps a terminal's Ctrl-C away from the servers: the fixtures stop
            # them in order during teardown instead.
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=None if env is None else dict(env),
                start_new_session=True,
                user=user,
                group=_gid(user),
                extra_groups=_groups(user),
            )

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def alive(self) -> bool:
        return self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def send(self, sig: signal.Signals) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> None:
        """Ask the server to exit with `sig`; SIGKILL it when it takes longer than `timeout`."""
        self.send(sig)
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the server and everything it forked (postgres backends would linger otherwise)."""
        if self._popen.poll() is None:
            # start_new_session made the server a process group leader.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._popen.pid, signal.SIGKILL)
        self._popen.wait()

    def failure(self, message: str) -> HarnessError:
        """An error naming the command and quoting the log tail."""
        state = "running" if self.alive else f"exited with {self.returncode}"
        return HarnessError(
            f"{message}\n  command: {' '.join(self.argv)}\n  process: {state}\n"
            f"  log tail ({self.log_path}):\n{log_tail(self.log_path)}"
        )

    def wait_until(self, ready: Callable[[], bool], *, what: str, timeout: float) -> None:
        """Poll `ready` until true; fail early with the log tail when the process dies."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            if ready():
                return
            if not self.alive:
                self._popen.wait()
                raise self.failure(f"{what}: the server exited during start-up")
            if time.monotonic() > deadline:
                self.kill()
                raise self.failure(f"{what}: not ready after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class Stoppable(Protocol):
    def stop(self) -> None: ...


# Servers still running, stopped at interpreter exit even when a fixture's teardown never ran.
_live: dict[int, Stoppable] = {}


def track(server: Stoppable) -> None:
    _live[id(server)] = server


def untrack(server: Stoppable) -> None:
    _live.pop(id(server), None)


def stop_all() -> None:
    """Stop every server this process started and has not stopped, newest first."""
    for server in reversed(list(_live.values())):
        with contextlib.suppress(Exception):
            server.stop()
    _live.clear()


atexit.register(stop_all)


def install_sigterm_cleanup() -> None:
    """Stop the servers on SIGTERM too (a CI timeout), where atexit would not run.

    Only installed over the default action, so a handler someone else set up wins.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop_all()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
