"""Three region agents in three regions next to a real center, Redis and PostgreSQL; every test
runs twice: in plaintext, and with mutual TLS and the access file on every listener and on the
agents' channels to the center (tests/helpers/tls.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.agent import AgentThread
from tests.helpers.center import CenterThread, center_settings
from tests.helpers.regions import agents_of
from tests.helpers.tls import Tls, secured

REGIONS = ("eu", "us", "ap")


@pytest.fixture(scope="session", params=["plaintext", "mtls"])
def transport(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Tls | None:
    return None if request.param == "plaintext" else Tls.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def _transport_of_every_helper(transport: Tls | None) -> Iterator[None]:
    with secured(transport):
        yield


@pytest.fixture(scope="session")
def center(transport: Tls | None, redis_url: str, database_url: str) -> Iterator[CenterThread]:
    """The end-to-end tests' own center, speaking their transport."""
    with secured(transport):
        running = CenterThread(center_settings(redis_url, database_url)).start()
    yield running
    running.stop()


@pytest.fixture
def agents(center: CenterThread, tmp_path: Path) -> Iterator[list[AgentThread]]:
    with agents_of(center, tmp_path, REGIONS) as running:
        yield running
