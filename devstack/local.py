"""The kept local stack of ``make run`` (scripts/run-stack.sh): Redis and PostgreSQL with their data
in one directory (``.stack/``) on fixed ports, outliving the command that started them.

Unlike the throwaway servers these keep their data between runs (Redis with an append-only
file, PostgreSQL with durability on), so Redis and the ledger agree; a server already answering
on a port is reused, and ``stop`` stops only the servers whose pid files are in the directory.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .binaries import postgres_binary
from .errors import StackError
from .ports import LOOPBACK
from .postgres import PostgresServer, ensure_database, postmaster_pid
from .process import program_of, remove_tree, stop_pid
from .redis_server import RedisServer
from .resp import ping

DATABASE = "quota_center"
REDIS_URL_VAR = "QUOTA_CENTER_REDIS_URL"
DATABASE_URL_VAR = "QUOTA_CENTER_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class LocalStack:
    """Where the kept servers live: ``directory``/redis and ``directory``/postgres, and their ports."""

    directory: Path
    redis_port: int = 6390
    pg_port: int = 5440

    @property
    def redis_dir(self) -> Path:
        return self.directory / "redis"

    @property
    def pg_dir(self) -> Path:
        return self.directory / "postgres"

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.redis_port}/0"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.pg_port}/{DATABASE}"


def start_services(stack: LocalStack, env: Mapping[str, str], say: Callable[[str], None]) -> dict[str, str]:
    """Start (or reuse) Redis and PostgreSQL; the center's URL variables for them.

    A URL already set in ``env`` names a server of the user's: it is used as is, nothing started.
    """
    urls: dict[str, str] = {}
    if env.get(REDIS_URL_VAR):
        say(f"using Redis at {env[REDIS_URL_VAR]}")
        urls[REDIS_URL_VAR] = env[REDIS_URL_VAR]
    else:
        _start_redis(stack, say)
        urls[REDIS_URL_VAR] = stack.redis_url
    if env.get(DATABASE_URL_VAR):
        say(f"using PostgreSQL at {env[DATABASE_URL_VAR]}")
        urls[DATABASE_URL_VAR] = env[DATABASE_URL_VAR]
    else:
        server_dsn = _start_postgres(stack, say)
        urls[DATABASE_URL_VAR] = ensure_database(server_dsn, DATABASE)
    return urls


def _start_redis(stack: LocalStack, say: Callable[[str], None]) -> None:
    if ping(stack.redis_port):
        say(f"Redis already answers on {LOOPBACK}:{stack.redis_port}: reusing it")
        return
    say(f"starting Redis on {LOOPBACK}:{stack.redis_port} (data in {stack.redis_dir})")
    server = RedisServer(port=stack.redis_port, directory=stack.redis_dir, durable=True)
    server.start().detach()


def _start_postgres(stack: LocalStack, say: Callable[[str], None]) -> str:
    server = PostgresServer(port=stack.pg_port, directory=stack.pg_dir, durable=True)
    if _pg_answers(stack.pg_port):
        say(f"PostgreSQL already answers on {LOOPBACK}:{stack.pg_port}: reusing it")
        return server.dsn
    if not (stack.pg_dir / "data" / "PG_VERSION").is_file():
        say(f"creating a PostgreSQL cluster in {stack.pg_dir / 'data'}")
    say(f"starting PostgreSQL on {LOOPBACK}:{stack.pg_port}")
    server.start().detach()
    return server.dsn


def _pg_answers(port: int) -> bool:
    argv = [postgres_binary("pg_isready"), "-q", "-h", LOOPBACK, "-p", str(port), "-t", "2"]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False).returncode == 0


def stop_services(stack: LocalStack, say: Callable[[str], None]) -> None:
    """Stop the Redis and PostgreSQL this directory's pid files name; their data stays."""
    # A pid file may outlive its server (a crash): the pid must still be that program's.
    redis_pid = _pid_from(stack.redis_dir / "redis.pid")
    if redis_pid is not None and (program_of(redis_pid) or "").startswith("redis"):
        say(f"stopping Redis ({LOOPBACK}:{stack.redis_port})")
        if not stop_pid(redis_pid, signal.SIGTERM, timeout=10):
            say(f"Redis (pid {redis_pid}) is still running after 10 s")
    pg_pid = postmaster_pid(stack.pg_dir / "data")
    if pg_pid is not None and (program_of(pg_pid) or "").startswith("postgres"):
        say(f"stopping PostgreSQL ({LOOPBACK}:{stack.pg_port})")
        # SIGINT is PostgreSQL's fast shutdown: sessions rolled back, then a checkpoint.
        if not stop_pid(pg_pid, signal.SIGINT, timeout=60):
            raise StackError(f"PostgreSQL (pid {pg_pid}) is still running after 60 s")


def clean(stack: LocalStack, say: Callable[[str], None]) -> None:
    """Stop the servers and delete their data."""
    stop_services(stack, say)
    remove_tree(stack.directory)


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
