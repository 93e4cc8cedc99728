"""Process plumbing shared by every server devstack starts: logs, OS users, temp dirs, waits, stops."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import StackError


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a server log, for error messages."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"    (no log at {path}: {exc})"
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
        raise StackError(
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
        raise StackError(f"{what}: timed out after {timeout}s: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise StackError(
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
    """One long-running server process whose stdout and stderr go to a log file.

    ``env`` is laid over this process's environment, so a server gets PATH and friends plus its
    own settings.
    """

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
            # A new session keeps a terminal's Ctrl-C away from the servers: their owner stops
            # them in order instead (and a kept server outlives the command that started it).
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=None if env is None else {**os.environ, **env},
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

    def wait(self, timeout: float | None = None) -> int:
        """The exit status once the process ended (subprocess.TimeoutExpired after ``timeout``)."""
        return self._popen.wait(timeout)

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

    def failure(self, message: str) -> StackError:
        """An error naming the command and quoting the log tail."""
        state = "running" if self.alive else f"exited with {self.returncode}"
        return StackError(
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


def stop_pid(pid: int, sig: signal.Signals, *, timeout: float = 30) -> bool:
    """Signal a server this process did not start (a kept one, by its pid file) and wait for it to go.

    False when it is still there after ``timeout``: a kept server holds data, so it is never
    SIGKILLed behind its owner's back.
    """
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _exists(pid):
            return True
        time.sleep(0.1)
    return False


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A kept server's parent has exited; until whoever inherited it reaps it, an exited server
    # is a zombie (state Z in /proc), which still answers signal 0.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def program_of(pid: int) -> str | None:
    """The program name of a running pid (Linux /proc), None when it is gone or unknown."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
