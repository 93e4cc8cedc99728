"""A live center and agent scraped as Prometheus would: both pass `promtool check metrics`, the
per-budget series stay bounded (the most active by name, the rest added up under "_other"), and
a closed budget's series are gone from the very next scrape."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack import RedisServer
from quota.v1 import admin_pb2 as apb
from tests.helpers.agent import AgentThread, agent_settings
from tests.helpers.calls import create, deduct
from tests.helpers.center import CenterThread, Client, own_ledger_center
from tests.helpers.regions import eventually
from tests.monitoring import known_metrics

PROMTOOL = shutil.which("promtool")


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def _promtool_check(text: str) -> None:
    assert PROMTOOL is not None, "promtool is missing: scripts/install-deps.sh installs Debian's prometheus"
    done = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    problems = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, problems
    assert not problems, problems


_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
    "summary": ("_sum", "_count"),
}


def _exported(text: str) -> set[str]:
    """The sample names a scrape has or declares (a labelled family with no series yet declares
    its type): what a rule or a dashboard may name."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {s.name for s in family.samples}
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
    return names


def _budgets_in(text: str, family: str) -> set[str]:
    return set(re.findall(rf'^{family}\{{budget="([^"]+)"\}} ', text, re.MULTILINE))


async def _budgets_shown(url: str, family: str, expected: set[str], who: str) -> None:
    """Wait until ``family``'s series at ``url`` are labelled with exactly the ``expected`` budgets."""
    shown: list[set[str]] = []

    async def settled() -> bool:
        shown.append(_budgets_in(await asyncio.to_thread(_scrape, url), family))
        return shown[-1] == expected

    try:
        await eventually(settled, 10, f"{who} should show {sorted(expected)}")
    except AssertionError:
        raise AssertionError(f"{who} shows {sorted(shown[-1])}, not {sorted(expected)}") from None


def _value(text: str, series: str) -> float:
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert m is not None, f"{series} not in the scrape"
    return float(m.group(1))


@pytest.mark.timeout(120)
async def test_live_scrapes_pass_promtool_and_stay_bounded(
    fresh_redis: RedisServer, database_url: str, tmp_path: Path
) -> None:
    # A database of its own: the active set is seeded from the ledger, and other tests' budgets
    # would count among the ones this center looks after.
    with own_ledger_center(
        fresh_redis.url, database_url, "metrics", gauge_interval_s=0.2, metrics_budgets=2
    ) as c:
        await _scrapes(c, tmp_path)


async def _scrapes(center: CenterThread, tmp_path: Path) -> None:
    agent = AgentThread(
        agent_settings(
            tmp_path / "a.journal", center.target, agent_id=f"eu-{uuid.uuid4().hex[:6]}", metrics_budgets=1
        )
    ).start()
    admin, at_agent = Client(center.target), Client(agent.target)
    tag = uuid.uuid4().hex[:6]
    busy, slow, quiet = f"busy-{tag}", f"slow-{tag}", f"quiet-{tag}"
    try:
        for b in (busy, slow, quiet):
            await create(admin, b, 100_000, sub_buckets=1)
        # All three are in use (the center looks after them), but only busy and slow go on
        # consuming while the gauges look.
        await deduct(admin, quiet, f"{quiet}-1", 1)
        for i in range(40):
            await deduct(admin, busy, f"{busy}-{i}", 5)
            await deduct(admin, slow, f"{slow}-{i}", 1)
            await asyncio.sleep(0.03)
        await deduct(at_agent, slow, f"{slow}-agent", 1)
        await deduct(at_agent, busy, f"{busy}-agent", 1)  # used last at the agent

        # The two that consumed most lately by name, the third added up.
        await _budgets_shown(
            center.metrics_url, "quota_budget_remaining", {busy, slow, "_other"}, "the center"
        )
        text = await asyncio.to_thread(_scrape, center.metrics_url)
        _promtool_check(text)
        assert _value(text, 'quota_budget_size{budget="_other"}') == 100_000  # quiet's
        assert _value(text, "quota_budgets_tracked") == 3
        assert _value(text, "quota_audit_unbalanced_budgets") == 0
        assert _value(text, "quota_spending_stopped") == 0
        assert "_created" not in text
        # Every name the rules, dashboards and runbooks may use is one this center exports.
        assert _exported(text) >= known_metrics.CENTER, known_metrics.CENTER - _exported(text)

        # At the agent, the budget used last by name, the other added up.
        await _budgets_shown(
            agent.metrics_url, "quota_region_agent_slice_available", {busy, "_other"}, "the agent"
        )
        agent_text = await asyncio.to_thread(_scrape, agent.metrics_url)
        _promtool_check(agent_text)
        assert _value(agent_text, "quota_region_agent_session_up") == 1
        answered = _value(agent_text, "quota_region_agent_heartbeat_answered_timestamp_seconds")
        assert abs(time.time() - answered) < 10, answered
        assert "_created" not in agent_text
        assert _exported(agent_text) >= known_metrics.AGENT, known_metrics.AGENT - _exported(agent_text)

        await admin.admin.CloseBudget(apb.ChangeStateRequest(budget_id=busy, actor="test"))
        after = await asyncio.to_thread(_scrape, center.metrics_url)
        assert f'budget="{busy}"' not in after
        _promtool_check(after)
    finally:
        await admin.close()
        await at_agent.close()
        agent.stop()
