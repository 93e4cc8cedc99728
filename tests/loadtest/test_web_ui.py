"""Locust's web UI in a real browser: the load test's options and scenario picker, edited and run.

`python -m loadtest.run --web` (a master and a worker, as a user would start it) serves the UI
against the session's center; Debian's chromium, driven by Playwright, edits the form the way a
person would and the center says whether the run did what the form asked. Playwright's own
browser download is not used: scripts/install-deps.sh installs /usr/bin/chromium.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devstack import LOOPBACK, free_port
from loadtest.catalog import SCENARIOS
from quota.v1 import admin_pb2, admin_pb2_grpc
from quota.v1 import common_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# The load test's options as the form names its fields (Locust's UI camel-cases them).
FIELDS = (
    "scenario",
    "center",
    "agents",
    "budget",
    "tallyDir",
    "duplicateFraction",
    "maxAmount",
    "callTimeout",
)
# Bounds of each wait, all well inside the test's own timeout.
STARTUP_S = 25.0
UI_MS = 10_000

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T = TypeVar("T")


def create_budget(center: str, total: int) -> str:
    budget_id = f"lt-webui-{uuid.uuid4().hex[:8]}"
    with grpc.insecure_channel(center) as channel:
        reply = admin_pb2_grpc.AdminStub(channel).CreateBudget(
            admin_pb2.CreateBudgetRequest(
                budget_id=budget_id, unit="unit", total=total, actor="test", reason="web UI test"
            ),
            timeout=10,
        )
    assert reply.code == pb.RESULT_CODE_OK, reply.message
    return budget_id


def consumed(center: str, budget_id: str) -> int:
    with grpc.insecure_channel(center) as channel:
        budget = (
            admin_pb2_grpc.AdminStub(channel)
            .GetBudget(admin_pb2.GetBudgetRequest(budget_id=budget_id), timeout=10)
            .budget
        )
    return int(budget.consumed)


def poll(what: str, read: Callable[[], T | None], timeout: float) -> T:
    """The first non-None `read()` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what} after {timeout} s"
        time.sleep(0.2)


@dataclass(frozen=True, slots=True)
class Served:
    """`loadtest.run --web` as the test started it."""

    url: str
    budget: str  # the one on its command line
    out: Path
    log: Path
    process: subprocess.Popen[bytes]

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def serving(self) -> bool | None:
        assert self.process.poll() is None, f"loadtest.run exited {self.process.returncode}:\n{self.tail()}"
        try:
            with urllib.request.urlopen(self.url, timeout=2) as reply:
                return reply.status == 200 or None
        except OSError:
            return None


@pytest.fixture
def web_ui(center_target: str, tmp_path: Path) -> Iterator[Served]:
    """`loadtest.run steady --web` with one worker, against the session's center, on a free port."""
    port = free_port()
    budget = create_budget(center_target, 10**6)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "loadtest.run", "steady", "--web", "--web-port", str(port)]
    argv += ["--center", center_target, "--budget", budget, "--workers", "1", "--out", str(out)]
    log = tmp_path / "run.log"
    with log.open("wb") as sink:
        # A session of its own: whatever is left of it at the end goes as one process group.
        process = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, start_new_session=True
        )
    served = Served(f"http://{LOOPBACK}:{port}/", budget, out, log, process)
    try:
        poll("the web UI", served.serving, STARTUP_S)
        yield served
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def chromium() -> Iterator[Browser]:
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: scripts/install-deps.sh installs Debian's chromium"
    with sync_playwright() as playwright:
        # As root the sandbox cannot start; /dev/shm is small in containers.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-dev-shm-usage"],
            timeout=UI_MS * 2,
        )
        try:
            yield launched
        finally:
            launched.close()


def status(state: str) -> re.Pattern[str]:
    """The header's Status (shown in capitals, written in lower case)."""
    return re.compile(rf"Status\s*{state}", re.IGNORECASE)


def request_counts(page: Page) -> dict[str, int]:
    """Name → # Requests of every row of the Statistics table."""
    counts = {}
    for row in page.locator("table tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        if len(cells) > 2 and cells[2].strip().isdigit():
            counts[cells[1].strip()] = int(cells[2])
    return counts


def read_tally(directory: Path) -> dict[str, Any] | None:
    files = sorted(directory.glob("*.json"))
    return json.loads(files[0].read_text()) if len(files) == 1 else None


def test_options_and_scenario_picker_edited_in_the_browser_drive_the_run(
    web_ui: Served, chromium: Browser, center_target: str
) -> None:
    typed = create_budget(center_target, 10**9)
    page = chromium.new_page()
    page.set_default_timeout(UI_MS)
    page.goto(web_ui.url)
    header = page.locator("header")
    expect(header).to_contain_text(re.compile(r"Workers\s*1"))

    # The options are in the form, filled in from the command line; the picker lists every scenario.
    page.get_by_text("Custom parameters").click()
    for name in FIELDS:
        expect(page.locator(f"[name={name}]")).to_be_visible()
    expect(page.locator("input[name=center]")).to_have_value(center_target)
    expect(page.locator("input[name=budget]")).to_have_value(web_ui.budget)
    picker = page.locator("select[name=scenario]")
    expect(picker).to_have_value("steady")
    assert picker.locator("option").all_inner_texts() == list(SCENARIOS)

    # Another budget, another scenario, and up to 3 units a call (flash_sale's own largest is 1).
    page.locator("input[name=userCount]").fill("3")
    page.locator("input[name=spawnRate]").fill("3")
    page.locator("input[name=budget]").fill(typed)
    page.locator("input[name=maxAmount]").fill("3")
    picker.select_option("flash_sale")
    page.get_by_role("button", name="Start").click()

    expect(header).to_contain_text(status("running"))
    counts = poll("Deduct calls in the Statistics table", lambda: _enough(request_counts(page)), 20)
    # flash_sale only deducts; steady, the scenario the UI started with, would return and reserve.
    assert set(counts) - {"Aggregated"} == {"Deduct"}, counts

    page.get_by_role("button", name="Stop").click()
    expect(header).to_contain_text(status("stopped"))
    spent = consumed(center_target, typed)
    time.sleep(1)
    assert consumed(center_target, typed) == spent > 0, "the typed budget: nothing spent, or still spent"
    assert consumed(center_target, web_ui.budget) == 0, "the command line's budget was spent"

    # The worker's counts of the run: the typed budget, amounts up to the typed 3, all at the center.
    tally = poll("the worker's tally", lambda: read_tally(web_ui.out / "tallies"), 10)
    assert tally["budget_id"] == typed
    amounts = {amount for _, amount in tally["ok_deductions"]}
    assert amounts <= {1, 2, 3}, amounts
    assert max(amounts) > 1, amounts
    assert tally["unknown"] == tally["unexpected"] == tally["mismatches"] == []
    assert tally["deducted"] == spent

    # SIGTERM: Locust and its worker stop, with no failure recorded, and Locust writes its report.
    web_ui.process.send_signal(signal.SIGTERM)
    code = web_ui.process.wait(20)
    assert code == 0, f"loadtest.run --web exited {code}:\n{web_ui.tail()}"
    assert (web_ui.out / "report.html").is_file(), web_ui.tail()


def _enough(counts: dict[str, int]) -> dict[str, int] | None:
    return counts if counts.get("Deduct", 0) >= 50 else None
