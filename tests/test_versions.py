"""Every command the project ships or documents says which build it is (``--version``)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

import pytest

MODULES = [
    "devstack",
    "loadtest.run",
    "loadtest.check",
    "loadtest.bench",
    "loadtest.bench.echo",
    "loadtest.simulate",
    "loadtest.strategies",
    "loadtest.agent_processes",
    "loadtest.grpc_versions",
]


@pytest.mark.parametrize("module", MODULES)
def test_module_commands_name_the_build(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    version = re.escape(metadata.version("quota-center"))
    assert re.fullmatch(rf"python -m {re.escape(module)} {version} \(Python [\d.]+\)\n", out), out
