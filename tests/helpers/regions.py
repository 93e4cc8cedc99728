"""Calls on agents and the bookkeeping the end-to-end tests check against."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devstack import AgentProcess
from loadtest.verdict import SurelyLeft
from quota.v1 import common_pb2 as pb
from tests.helpers import tls
from tests.helpers.agent import AgentThread, agent_settings
from tests.helpers.center import CenterThread, Client

OK = pb.RESULT_CODE_OK
INSUFFICIENT = pb.RESULT_CODE_INSUFFICIENT


@dataclass(frozen=True)
class Call:
    region: int
    amount: int
    code: int
    sent: float
    done: float


@dataclass
class Book:
    """Every deduction the test made, with when it was sent and answered."""

    calls: list[Call] = field(default_factory=list)

    async def deduct(self, client: Client, region: int, budget_id: str, rid: str, amount: int) -> int:
        sent = time.monotonic()
        r = await client.quota.Deduct(pb.DeductRequest(budget_id=budget_id, request_id=rid, amount=amount))
        assert r.code in (OK, INSUFFICIENT), r
        if r.code == OK:
            assert r.amount == amount, r
        self.calls.append(Call(region, amount, r.code, sent, time.monotonic()))
        return r.code

    @property
    def served(self) -> int:
        return sum(c.amount for c in self.calls if c.code == OK)

    def false_refusals(self, total: int) -> list[Call]:
        """Refusals that were certainly false: the amount was at most what was surely left."""
        surely = SurelyLeft(total, ((c.sent, c.amount) for c in self.calls if c.code == OK))
        return [r for r in self.calls if r.code == INSUFFICIENT and r.amount <= surely.at(r.done)]


def start_agents(center_target: str, journals: Path, regions: Sequence[str]) -> list[AgentThread]:
    """An agent per region next to the center at ``center_target`` (ids ``<region>-<tag>``), journals
    in ``journals``."""
    tag = uuid.uuid4().hex[:6]
    return [
        AgentThread(
            agent_settings(journals / f"{r}.journal", center_target, agent_id=f"{r}-{tag}", region=r)
        ).start()
        for r in regions
    ]


@contextlib.contextmanager
def agents_of(center: CenterThread, journals: Path, regions: Sequence[str]) -> Iterator[list[AgentThread]]:
    """``start_agents`` next to ``center`` for a block; stopped when it ends."""
    running = start_agents(center.target, journals, regions)
    try:
        yield running
    finally:
        for a in running:
            a.stop()


async def stop_all(clients: Sequence[Client], agents: Sequence[AgentThread], center: CenterThread) -> None:
    """Close the clients, then stop the agents, then the center."""
    for c in clients:
        await c.close()
    for a in agents:
        a.stop()
    center.stop()


async def held_here(client: Client, budget_id: str) -> int:
    return (await client.quota.GetBalance(pb.GetBalanceRequest(budget_id=budget_id))).held_here


async def eventually(check, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def agent_process(
    journal: Path, center: str, agent_id: str, port: int, metrics_port: int = 0, **settings: str
) -> AgentProcess:
    """``region-agent serve`` as its own process (so that a test can SIGKILL it) on ``port``, serving.

    Its log is next to the journal; a restart with the same id and journal appends to it.
    """
    secured = tls.active()
    if secured is not None:
        settings = {**{k.upper(): v for k, v in secured.agent(agent_id).items()}, **settings}
    agent = AgentProcess(
        center,
        agent_id=agent_id,
        region="eu",
        journal=journal,
        log_path=journal.with_name(f"{agent_id}.log"),
        port=port,
        metrics_port=metrics_port,
        settings={"RECONNECT_MIN_MS": "50", "RECONNECT_MAX_MS": "300", **settings},
        credentials=None if secured is None else secured.credentials(),
    )
    return await asyncio.to_thread(agent.start)
