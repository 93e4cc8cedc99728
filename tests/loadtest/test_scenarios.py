"""Each Locust scenario for a few seconds, end to end, and the check's own ability to fail.

Locust (gevent, monkey-patching) only ever runs in subprocesses: `python -m loadtest.run`, as a
user would type it. One scenario starts its own stack and runs a master with a worker; the others
share one stack (`python -m devstack up`) and run a single Locust process, to stay quick.
Nothing here asserts a speed: the machine is shared.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _run(args: list[str], timeout: float = 100) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    logs = tmp_path_factory.mktemp("stack-logs")
    with subprocess.Popen(
        [sys.executable, "-m", "devstack", "up", "--agents", "3", "--log-dir", str(logs)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, f"the stack did not start (exit {proc.wait(10)}); logs in {logs}"
            yield json.loads(line)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _summary(out: Path, done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "result: PASS" in done.stdout
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    numbers, tally = summary["numbers"], summary["tally"]
    assert summary["ok"] is True
    assert summary["locust_exit"] == 0
    assert summary["audit_balanced"] is True
    assert numbers["consumed"] + numbers["reserved"] + numbers["in_doubt"] <= numbers["total"]
    assert tally["mismatches"] == []
    assert tally["unexpected"] == []
    assert tally["duplicates_exists"] == tally["duplicates_sent"] > 0
    assert sum(tally["codes"]["Deduct"].values()) > 0
    for name in ("locust_stats.csv", "locust_failures.csv", "report.html"):
        assert (out / name).is_file(), name
    return summary


def test_flash_sale_starts_its_stack_and_sells_every_unit_once(tmp_path: Path) -> None:
    out = tmp_path / "flash"
    args = ["loadtest.run", "flash_sale", "--time", "3s", "--users", "5", "--workers", "1"]
    done = _run([*args, "--total", "300", "--out", str(out)])
    summary = _summary(out, done)
    numbers = summary["numbers"]
    assert numbers["total"] == 300
    assert numbers["consumed"] == 300  # after the final drain; the drain itself must have succeeded
    assert summary["expected_consumed"] + max(summary["left_after_run"], 0) == 300
    assert summary["false_refusals"] == []
    assert summary["tally_files"] == 1  # the worker's (the master runs no users)
    assert (out / "logs" / "center.log").is_file()


@pytest.mark.parametrize("scenario", ["steady", "drain", "skewed_regions", "center_direct"])
def test_scenario_on_a_running_stack(scenario: str, stack: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / scenario
    args = ["loadtest.run", scenario, "--time", "3s", "--users", "5", "--workers", "0", "--out", str(out)]
    args += ["--center", stack["center"], "--agents", ",".join(stack["agents"])]
    if scenario == "drain":
        args += ["--total", "5000", "--max-amount", "50"]
    summary = _summary(out, _run(args))
    numbers, tally = summary["numbers"], summary["tally"]
    assert numbers["consumed"] == summary["expected_consumed"] + max(summary["left_after_run"] or 0, 0)
    if scenario == "drain":
        assert numbers["consumed"] == numbers["total"] == 5000
        assert summary["false_refusals"] == []
    if scenario == "skewed_regions":
        share = {label: count / sum(tally["targets"].values()) for label, count in tally["targets"].items()}
        assert set(share) == {"eu", "us", "ap"}
        assert share["eu"] > share["us"] > share["ap"]
    if scenario == "center_direct":
        assert set(tally["targets"]) == {"center"}
    if scenario == "steady":
        assert {"Deduct", "Return", "Reserve", "Confirm"} <= set(tally["codes"])


def test_check_fails_on_a_miscount_and_a_false_refusal(stack: dict[str, Any], tmp_path: Path) -> None:
    budget = f"lt-check-{uuid.uuid4().hex[:8]}"
    created = _run(["quotactl.main", "--target", stack["center"], "create", budget, "--total", "100"])
    assert created.returncode == 0, created.stderr
    tallies = tmp_path / "tallies"
    tallies.mkdir()
    # A user that claims 10 units it never got, and a refusal of 5 before anything was taken.
    fake = {
        "host": "h",
        "pid": 1,
        "budget_id": budget,
        "codes": {"Deduct": {"OK": 1, "INSUFFICIENT": 1}},
        "targets": {"center": 2},
        "deducted": 10,
        "confirmed": 0,
        "returned": 0,
        "duplicates_sent": 0,
        "duplicates_exists": 0,
        "mismatches": [],
        "unexpected": [],
        "ok_deductions": [[5.0, 10]],
        "earliest_refusal": {"5": 1.0},
        "refusals_unreachable": 0,
        "unknown": [],
    }
    (tallies / "h-1.json").write_text(json.dumps(fake))
    check = ["loadtest.check", "--center", stack["center"], "--budget", budget, "--scenario", "flash_sale"]
    done = _run([*check, "--tally-dir", str(tallies), "--settle-timeout", "1"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FALSE REFUSAL: 5 refused while at least 100 was left" in done.stdout
    assert "consumed 0 but the users' OK answers add up to 10" in done.stdout
    assert "result: FAIL" in done.stdout
