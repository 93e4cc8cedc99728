"""The kept local stack of scripts/run-stack.sh, through ``python -m devstack`` as the script calls it:
servers start once and are reused, outlive the command, keep their data across stop and start,
and ``clean`` removes them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import GrpcProcess, StackError, free_port, port_open, psql, redis_command

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _devstack(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("QUOTA_CENTER_", "STACK_"))}
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=clean_env | (env or {}),
    )


@pytest.fixture
def local() -> Iterator[list[str]]:
    """Options naming a fresh stack directory and free ports; the stack is cleaned up afterwards."""
    # In /tmp and traversable: as root, PostgreSQL runs as the postgres user, who must reach it.
    base = Path(tempfile.mkdtemp(prefix="qc-local-", dir="/tmp"))
    base.chmod(0o711)
    options = ["--dir", str(base / "stack"), "--redis-port", str(free_port()), "--pg-port", str(free_port())]
    yield options
    _devstack("clean", *options)
    shutil.rmtree(base, ignore_errors=True)


def test_services_start_once_keep_their_data_and_clean_removes_them(local: list[str]) -> None:
    directory, redis_port, pg_port = Path(local[1]), int(local[3]), int(local[5])
    first = _devstack("services", *local)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"export QUOTA_CENTER_REDIS_URL=redis://127.0.0.1:{redis_port}/0",
        f"export QUOTA_CENTER_DATABASE_URL=postgresql://postgres@127.0.0.1:{pg_port}/quota_center",
    ]
    # The command has exited; the servers are still there.
    assert redis_command(redis_port, "SET", "kept", "yes") == b"OK"
    dsn = f"postgresql://postgres@127.0.0.1:{pg_port}/quota_center"
    psql(dsn, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")

    again = _devstack("services", *local)
    assert again.returncode == 0, again.stderr
    assert "Redis already answers" in again.stderr
    assert "PostgreSQL already answers" in again.stderr

    stopped = _devstack("stop", *local)
    assert stopped.returncode == 0, stopped.stderr
    assert not port_open(redis_port)
    assert not port_open(pg_port)
    assert (directory / "postgres" / "data" / "PG_VERSION").is_file()

    restarted = _devstack("services", *local)
    assert restarted.returncode == 0, restarted.stderr
    assert "already answers" not in restarted.stderr
    assert redis_command(redis_port, "GET", "kept") == b"yes"
    assert psql(dsn, "SELECT x FROM kept").strip() == "7"

    cleaned = _devstack("clean", *local)
    assert cleaned.returncode == 0, cleaned.stderr
    assert not port_open(redis_port)
    assert not port_open(pg_port)
    assert not directory.exists()


def test_services_use_the_servers_the_environment_names(local: list[str]) -> None:
    given = {
        "QUOTA_CENTER_REDIS_URL": "redis://10.0.0.9:6379/2",
        "QUOTA_CENTER_DATABASE_URL": "postgresql://app@10.0.0.9/ledger",
    }
    done = _devstack("services", *local, env=given)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"export {k}={v}" for k, v in given.items()]
    assert not Path(local[1]).exists()


def test_help_names_every_setting() -> None:
    done = _devstack("services", "--help")
    assert done.returncode == 0
    for name in ("STACK_DIR", "STACK_REDIS_PORT", "STACK_PG_PORT", "QUOTA_CENTER_REDIS_URL"):
        assert name in done.stdout


def test_a_server_that_dies_at_start_up_is_reported_with_its_log(tmp_path: Path) -> None:
    server = GrpcProcess(
        "doomed",
        [sys.executable, "-c", "print('no such settings'); raise SystemExit(3)"],
        port=free_port(),
        log_path=tmp_path / "doomed.log",
    )
    with pytest.raises(StackError, match=r"(?s)doomed .*exited during start-up.*no such settings"):
        server.start()
