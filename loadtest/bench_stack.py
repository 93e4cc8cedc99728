"""Throwaway servers on loopback for the benchmark, each a subprocess with its log in one temp dir.

Redis (nothing on disk), PostgreSQL (``initdb`` in the temp dir; fsync, synchronous commit and
full-page writes off, as in the tests), the center (``quota-center serve``), one region agent
(``region-agent serve``, its journal in the temp dir) and the two echo servers
(``python -m loadtest.bench_echo``). Every process gets free ``127.0.0.1`` ports and its own
process group; :meth:`Stack.stop` stops them newest first (SIGTERM, then SIGKILL) and removes
the temp dir unless asked to keep it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loadtest.stack import LOOPBACK, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]

Log = Callable[[str], None]


class StackError(RuntimeError):
    """A server of the benchmark could not be started."""


def _service_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` OS user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise StackError("running as root, but there is no 'postgres' OS user to run PostgreSQL as") from None
    return "postgres"


def _pg_bindir() -> Path:
    """``$PG_BINDIR``, else the highest ``/usr/lib/postgresql/*/bin`` (Debian), else PATH."""
    override = os.environ.get("PG_BINDIR")
    if override:
        return Path(override)

    def version(d: Path) -> tuple[int, ...]:
        try:
            return tuple(int(p) for p in d.parent.name.split("."))
        except ValueError:
            return (-1,)

    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    if found:
        return max(found, key=version)
    initdb = shutil.which("initdb")
    if initdb is None:
        raise StackError("PostgreSQL binaries (initdb, postgres) not found; run scripts/install-deps.sh")
    return Path(initdb).parent


def _program(name: str) -> str:
    """A console script of this venv (next to the interpreter), else one on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (log is empty)"

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        if self.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


class Stack:
    """Redis, PostgreSQL, the center, one agent and the echo servers on free loopback ports."""

    def __init__(self, log: Log, *, keep: bool = False, event_loop: str = "asyncio") -> None:
        self.log = log
        self.keep = keep
        self.event_loop = event_loop
        self.dir = Path(tempfile.mkdtemp(prefix="quota-bench-"))
        self.procs: list[Proc] = []
        self.agent_id = f"bench-{uuid.uuid4().hex[:8]}"
        self.redis_port = free_port()
        self.pg_port = free_port()
        self.center_port = free_port()
        self.center_metrics_port = free_port()
        self.agent_port = free_port()
        self.agent_metrics_port = free_port()
        self.echo_port = free_port()
        self.redis_echo_port = free_port()

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.redis_port}/0"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.pg_port}/postgres"

    @property
    def center_target(self) -> str:
        return f"{LOOPBACK}:{self.center_port}"

    @property
    def agent_target(self) -> str:
        return f"{LOOPBACK}:{self.agent_port}"

    @property
    def agent_metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.agent_metrics_port}/metrics"

    @property
    def echo_target(self) -> str:
        return f"{LOOPBACK}:{self.echo_port}"

    @property
    def redis_echo_target(self) -> str:
        return f"{LOOPBACK}:{self.redis_echo_port}"

    def pid(self, name: str) -> int:
        for p in self.procs:
            if p.name == name:
                return p.popen.pid
        raise KeyError(name)

    def start(self) -> None:
        try:
            self._start_redis()
            self._start_postgres()
            self._start_echo("echo", self.echo_port, None)
            self._start_echo("echo-evalsha", self.redis_echo_port, self.redis_url)
            self._start_center()
            self._start_agent()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in reversed(self.procs):
            # PostgreSQL: SIGINT is its fast shutdown.
            proc.stop(signal.SIGINT if proc.name == "postgres" else signal.SIGTERM)
        self.procs.clear()
        if self.keep:
            self.log(f"logs kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        log_path = self.dir / f"{name}.log"
        entry = pwd.getpwnam(user) if user is not None else None
        with log_path.open("ab") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd or self.dir,
                env=None if env is None else {**os.environ, **env},
                start_new_session=True,  # a terminal's Ctrl-C reaches the benchmark, which stops these
                user=user,
                group=None if entry is None else entry.pw_gid,
                extra_groups=None if entry is None else [],
            )
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def _wait(self, proc: Proc, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while not ready():
            if not proc.alive:
                raise StackError(f"{proc.name} exited during start-up (log {proc.log_path}):\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{proc.name} not ready after {timeout:.0f}s (log {proc.log_path}):\n{proc.tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _start_redis(self) -> None:
        redis_server = shutil.which("redis-server") or shutil.which(
            "redis-server", path="/usr/bin:/usr/local/bin"
        )
        if redis_server is None:
            raise StackError("redis-server not found; run scripts/install-deps.sh")
        data = self.dir / "redis"
        data.mkdir()
        argv = [redis_server, "--port", str(self.redis_port), "--bind", LOOPBACK, "--dir", str(data)]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""]
        proc = self._spawn("redis", argv)
        self.log(f"redis-server on {LOOPBACK}:{self.redis_port}")
        self._wait(proc, lambda: _redis_ping(self.redis_port))

    def _start_postgres(self) -> None:
        user = _service_user()
        bindir = _pg_bindir()
        pg = self.dir / "pg"
        pg.mkdir()
        sock = pg / "sock"
        sock.mkdir(mode=0o700)
        if user is not None:
            entry = pwd.getpwnam(user)
            self.dir.chmod(0o755)  # let the postgres user reach its dir
            for path in (pg, sock):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        initdb = [str(bindir / "initdb"), "-D", str(pg / "data"), "-A", "trust", "-U", "postgres"]
        initdb += ["--no-sync", "-E", "UTF8", "--locale=C"]
        self.log("initdb")
        done = subprocess.run(
            initdb,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=pg,
            check=False,
            user=user,
            group=None if user is None else pwd.getpwnam(user).pw_gid,
            extra_groups=None if user is None else [],
            timeout=120,
        )
        if done.returncode != 0:
            raise StackError(f"initdb failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
        argv = [str(bindir / "postgres"), "-D", str(pg / "data"), "-p", str(self.pg_port), "-k", str(sock)]
        argv += ["-c", f"listen_addresses={LOOPBACK}", "-c", "fsync=off", "-c", "synchronous_commit=off"]
        argv += ["-c", "full_page_writes=off", "-c", "max_connections=200"]
        proc = self._spawn("postgres", argv, user=user, cwd=pg)
        self.log(f"postgres on {LOOPBACK}:{self.pg_port}")
        psql = [str(bindir / "psql"), "-X", "-q", "-A", "-t", "-d", self.database_url, "-c", "SELECT 1"]
        self._wait(proc, lambda: _succeeds(psql))

    def _start_echo(self, name: str, port: int, redis_url: str | None) -> None:
        argv = [
            sys.executable,
            "-m",
            "loadtest.bench_echo",
            "--port",
            str(port),
            "--event-loop",
            self.event_loop,
        ]
        if redis_url is not None:
            argv += ["--redis-url", redis_url]
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        proc = self._spawn(name, argv, env={"PYTHONPATH": pythonpath}, cwd=REPO_ROOT)
        self.log(f"{name} server on {LOOPBACK}:{port}")
        self._wait(proc, lambda: _serving(f"{LOOPBACK}:{port}"))

    def _start_center(self) -> None:
        env = {
            "QUOTA_CENTER_GRPC_HOST": LOOPBACK,
            "QUOTA_CENTER_GRPC_PORT": str(self.center_port),
            "QUOTA_CENTER_METRICS_PORT": str(self.center_metrics_port),
            "QUOTA_CENTER_REDIS_URL": self.redis_url,
            "QUOTA_CENTER_DATABASE_URL": self.database_url,
            "QUOTA_CENTER_FILL_INTERVAL_MS": "100",
            "QUOTA_CENTER_DRAIN_GRACE_S": "1",
            "QUOTA_CENTER_LOG_LEVEL": "WARNING",
            "QUOTA_CENTER_EVENT_LOOP": self.event_loop,
        }
        proc = self._spawn("center", [_program("quota-center"), "serve"], env=env)
        self.log(f"quota-center on {self.center_target}")
        self._wait(proc, lambda: _serving(self.center_target))

    def _start_agent(self) -> None:
        env = {
            "REGION_AGENT_AGENT_ID": self.agent_id,
            "REGION_AGENT_REGION": "bench",
            "REGION_AGENT_CENTER_TARGET": self.center_target,
            "REGION_AGENT_GRPC_HOST": LOOPBACK,
            "REGION_AGENT_GRPC_PORT": str(self.agent_port),
            "REGION_AGENT_METRICS_PORT": str(self.agent_metrics_port),
            "REGION_AGENT_JOURNAL_PATH": str(self.dir / f"{self.agent_id}.journal"),
            "REGION_AGENT_DRAIN_GRACE_S": "1",
            "REGION_AGENT_LOG_LEVEL": "WARNING",
            "REGION_AGENT_EVENT_LOOP": self.event_loop,
        }
        proc = self._spawn("agent", [_program("region-agent"), "serve"], env=env)
        self.log(f"region-agent {self.agent_id} on {self.agent_target}")
        self._wait(proc, lambda: _serving(self.agent_target))


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _succeeds(argv: Sequence[str]) -> bool:
    done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=30)
    return done.returncode == 0


def _serving(target: str) -> bool:
    """Whether the gRPC health service at ``target`` answers SERVING."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
