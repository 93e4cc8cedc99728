"""``make run STACK_TLS=1`` as a new user runs it (scripts/run-stack.sh): the center serves mutual
TLS with the local access file, and the sample session the script prints works as printed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from devstack import free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen[bytes], timeout_s: float = 90) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if re.search(pattern, text):
            return text
        assert proc.poll() is None, f"run-stack.sh exited {proc.returncode}:\n{text}"
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} within {timeout_s:.0f} s:\n{path.read_text(errors='replace')}")


def test_the_printed_sample_session_works_over_mutual_tls() -> None:
    base = Path(tempfile.mkdtemp(prefix="qc-run-", dir="/tmp"))
    base.chmod(0o711)  # as root, PostgreSQL runs as the postgres user, who must reach its directory
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUOTA_CENTER_", "STACK_", "QUOTACTL_"))}
    env |= {
        "STACK_DIR": str(base / "stack"),
        "STACK_REDIS_PORT": str(free_port()),
        "STACK_PG_PORT": str(free_port()),
        "QUOTA_CENTER_GRPC_PORT": str(port),
        "QUOTA_CENTER_METRICS_PORT": str(free_port()),
        "STACK_TLS": "1",
    }
    log = base / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/run-stack.sh"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        text = _wait_for(log, r"quota center listening", proc)
        assert f"gRPC     localhost:{port} (mutual TLS, access file" in text
        exports = re.search(r"^  export (QUOTACTL_CA=.*)$", text, re.M)
        assert exports is not None, text
        ctl_env = env | dict(item.split("=", 1) for item in shlex.split(exports.group(1)))
        commands = re.findall(r"^  (\.venv/bin/quotactl .*)$", text, re.M)
        assert [c.split()[3] for c in commands] == ["create", "deduct", "return", "get", "audit"], commands
        for command in commands:
            done = subprocess.run(
                shlex.split(command),
                cwd=REPO,
                env=ctl_env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert "audit: BALANCED" in done.stdout
        # Without the certificate the same command reaches nothing.
        bare = subprocess.run(
            shlex.split(commands[3]),
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert bare.returncode == 4, (bare.stdout, bare.stderr)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(
            ["bash", "scripts/run-stack.sh", "clean"], cwd=REPO, env=env, capture_output=True, timeout=120
        )
        shutil.rmtree(base, ignore_errors=True)
