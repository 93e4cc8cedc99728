"""The grpcio comparison's measurement, under the installed grpcio (no virtualenv is made here).

``python -m loadtest.grpc_versions --child`` is what each version's virtualenv runs: it starts the
echo server and the agent's servicer, drives both, and prints one JSON line. Nothing here asserts
a speed; the line must be complete and every call must have been answered (the child fails
on any error or refusal). Run as a subprocess: tests/loadtest shadows the ``loadtest`` package.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[2]


def test_one_round_measures_echo_and_agent_under_the_installed_grpcio() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loadtest.grpc_versions", "--child", "--seconds", "0.4"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["grpcio"] == grpc.__version__
    for key in ("echo.deduct", "agent.deduct", "echo.batch", "agent.batch"):
        assert result[key] > 0, key


def test_without_a_version_it_says_so() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loadtest.grpc_versions"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "name at least one grpcio version" in out.stderr
