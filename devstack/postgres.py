"""PostgreSQL on 127.0.0.1: a throwaway cluster (durability off, for speed) or a kept one, and psql.

As root, initdb and postgres run as the ``postgres`` OS user (they refuse root), so the data
directory is handed to that user.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .binaries import postgres_binary
from .errors import StackError
from .ports import LOOPBACK
from .process import ServerProcess, chown, run_checked, service_user
from .servers import DirServer

# Durability off: a throwaway cluster never outlives a crash, so every fsync is wasted time.
_FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresServer(DirServer):
    """A PostgreSQL cluster with trust auth for user postgres.

    ``directory``: where its data (``data/``), socket and log live, created when missing, kept at
    stop and initdb'ed only once (default: a temp dir, removed at stop). ``durable``: fsync and
    friends stay on (default off). ``settings``: more ``-c name=value`` server settings.
    ``log_path``: where its output goes (default ``postgres.log`` in its directory).
    """

    host = LOOPBACK
    program = "postgres"
    # Fast shutdown: roll back sessions, no wait for clients to leave.
    stop_signal = signal.SIGINT
    stop_timeout = 30.0

    def __init__(
        self,
        *,
        port: int | None = None,
        directory: Path | None = None,
        log_path: Path | None = None,
        durable: bool = False,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__(port=port, directory=directory, log_path=log_path)
        self._durable = durable
        self._settings = {**({} if durable else _FAST), **(settings or {})}
        self._startup_timeout = startup_timeout

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def owner(self) -> str | None:
        # initdb and postgres refuse root: as root, the postgres OS user runs them.
        return service_user()

    def create_database(self, name: str) -> str:
        """Create database `name` and return its DSN."""
        return create_database(self.dsn, name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with psql; returns unaligned, tuples-only output."""
        return psql(self.dsn_for(database), sql)

    def _prepare(self, user: str | None) -> None:
        directory = self.directory
        if user is not None and self._given_dir is not None:
            directory.chmod(0o700)
            _check_reachable(directory, user)
        sockets = directory / "sock"
        sockets.mkdir(mode=0o700, exist_ok=True)
        if user is not None:
            chown(sockets, user)
        if (directory / "data" / "PG_VERSION").is_file():
            return  # a kept cluster from an earlier run
        initdb = [postgres_binary("initdb"), "-D", str(directory / "data"), "-A", "trust", "-U", "postgres"]
        initdb += ["-E", "UTF8", "--locale=C"]  # C locale: LANG may name one not installed
        if not self._durable:
            initdb.append("--no-sync")
        run_checked(initdb, what="initdb", user=user, cwd=directory)

    def _launch(self, user: str | None) -> None:
        data = self.directory / "data"
        argv = [
            postgres_binary("postgres"),
            *("-D", str(data), "-p", str(self.port), "-k", str(self.directory / "sock")),
            *("-c", f"listen_addresses={self.host}"),
        ]
        for name, value in self._settings.items():
            argv += ["-c", f"{name}={value}"]
        self._proc = ServerProcess(argv, log_path=self.log_path, cwd=self.directory, user=user)
        proc = self._proc
        proc.wait_until(
            lambda: _postmaster_ready(data, proc.pid),
            what=f"postgres on {self.host}:{self.port}",
            timeout=self._startup_timeout,
        )

    def __repr__(self) -> str:
        return f"PostgresServer(dsn={self.dsn!r}, running={self.running})"


def _check_reachable(directory: Path, user: str) -> None:
    try:
        run_checked(["test", "-x", str(directory)], what="test -x", user=user)
    except StackError:
        raise StackError(
            f"the {user} OS user cannot reach {directory}; choose a directory it can (STACK_DIR)"
        ) from None


def _postmaster_ready(data: Path, pid: int) -> bool:
    # postmaster.pid: line 1 is the pid, line 8 the status, "ready" once connections are accepted.
    # Checking our own pid file, not the port, cannot mistake another server for ours.
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def postmaster_pid(data: Path) -> int | None:
    """The pid a data dir's server wrote, None when no server runs on it (or it is unreadable)."""
    try:
        return int((data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def dsn_for_database(dsn: str, database: str) -> str:
    """The same server DSN pointing at another database (credentials and query kept)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def psql(dsn: str, sql: str) -> str:
    """Run SQL with psql (no psqlrc, stop at the first error); returns unaligned tuples-only output."""
    argv = [postgres_binary("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql]
    return run_checked(argv, what="psql", timeout=60)


def create_database(server_dsn: str, name: str) -> str:
    """Create database `name` on the server of `server_dsn` and return its DSN."""
    _check_identifier(name)
    psql(server_dsn, f'CREATE DATABASE "{name}"')
    return dsn_for_database(server_dsn, name)


def ensure_database(server_dsn: str, name: str) -> str:
    """Create database `name` unless it exists (a kept server's); return its DSN."""
    _check_identifier(name)
    if psql(server_dsn, f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip():
        return dsn_for_database(server_dsn, name)
    return create_database(server_dsn, name)


def drop_database(server_dsn: str, name: str) -> None:
    """Drop database `name`, disconnecting whoever is still connected (PostgreSQL 13+)."""
    _check_identifier(name)
    psql(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check_identifier(name: str) -> None:
    # The name is spliced into SQL; a plain identifier needs no escaping.
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
