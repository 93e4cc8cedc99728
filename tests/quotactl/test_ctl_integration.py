"""quotactl as a real process against a running center.

``center_target`` ("127.0.0.1:PORT" of a running center) is provided by tests/conftest.py.
Deselect with ``-m "not integration"`` or ``-k "not integration"``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers.fake_center import SUBCOMMANDS

pytestmark = pytest.mark.integration

UNREACHABLE = "127.0.0.1:1"


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        assert self.out.count("\n") == 1, f"expected one JSON line, got {self.out!r}"
        data = json.loads(self.out)
        assert isinstance(data, dict)
        return data

    def __str__(self) -> str:
        return f"exit {self.code}\nstdout: {self.out}\nstderr: {self.err}"


def quotactl(target: str, *argv: str) -> Done:
    env = {k: v for k, v in os.environ.items() if k != "QUOTACTL_TARGET"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "quotactl.main",
            "--target",
            target,
            "--actor",
            "ctl-integration",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Done(done.returncode, done.stdout, done.stderr)


def new_budget_id() -> str:
    return f"ctl-it-{uuid.uuid4().hex[:12]}"


def get_budget(target: str, budget_id: str) -> dict[str, Any]:
    done = quotactl(target, "--json", "get", budget_id)
    assert done.code == 0, done
    budget = done.json()["budget"]
    assert isinstance(budget, dict)
    return budget


def assert_identity(budget: dict[str, Any]) -> None:
    parts = ["main", "held", "in_flight", "reserved", "in_doubt", "consumed"]
    assert sum(budget[p] for p in parts) == budget["total"], budget
    assert (
        budget["available"] == budget["total"] - budget["consumed"] - budget["reserved"] - budget["in_doubt"]
    )


def audit_until_balanced(target: str, budget_id: str, wait_s: float = 10.0) -> Done:
    """Audit; tolerate a ledger that lags the live balances by a moment, never longer than wait_s."""
    deadline = time.monotonic() + wait_s
    while True:
        done = quotactl(target, "--json", "audit", budget_id)
        if done.code != 5 or time.monotonic() > deadline:
            return done
        time.sleep(0.5)


def test_budget_lifecycle(center_target: str) -> None:
    target = center_target
    budget_id = new_budget_id()
    deduction_id = f"d-{uuid.uuid4()}"

    # create, and an identical create again: EXISTS is success
    create = [
        "--json",
        "create",
        budget_id,
        "--total",
        "10000",
        "--unit",
        "cent",
        "--reason",
        "ctl integration",
    ]
    done = quotactl(target, *create)
    assert done.code == 0, done
    data = done.json()
    assert data["code"] == "OK"
    assert data["budget"]["budget_id"] == budget_id
    assert data["budget"]["total"] == 10_000
    assert data["budget"]["state"] == "ACTIVE"
    done = quotactl(target, *create)
    assert done.code == 0, done
    assert done.json()["code"] == "EXISTS"

    # deduct with a request id, then the same request again
    done = quotactl(target, "--json", "deduct", budget_id, "300", "--request-id", deduction_id)
    assert done.code == 0, done
    data = done.json()
    assert (data["code"], data["amount"], data["request_id"]) == ("OK", 300, deduction_id)
    done = quotactl(target, "--json", "deduct", budget_id, "300", "--request-id", deduction_id)
    assert done.code == 0, done
    data = done.json()
    assert (data["code"], data["amount"]) == ("EXISTS", 300)

    # return part of it
    done = quotactl(
        target,
        "--json",
        "return",
        budget_id,
        "100",
        "--deduction-id",
        deduction_id,
        "--request-id",
        f"r-{uuid.uuid4()}",
    )
    assert done.code == 0, done
    data = done.json()
    assert (data["code"], data["amount"], data["refundable"]) == ("OK", 100, 200)

    # the numbers, as JSON integers
    budget = get_budget(target, budget_id)
    assert (budget["total"], budget["consumed"], budget["available"]) == (10_000, 200, 9_800)
    assert isinstance(budget["consumed"], int)
    assert_identity(budget)

    # and as text
    done = quotactl(target, "get", budget_id)
    assert done.code == 0, done
    lines = done.out.splitlines()
    assert any(line.startswith("consumed:") and line.split()[-1] == "200" for line in lines), done
    assert any(line.startswith("available:") and line.split()[-1] == "9800" for line in lines), done

    done = quotactl(target, "--json", "balance", budget_id)
    assert done.code == 0, done
    data = done.json()
    assert (data["total"], data["consumed"], data["available"]) == (10_000, 200, 9_800)

    # bad amounts are refused client-side and change nothing
    for bad in ["-5", "1.5", "0"]:
        done = quotactl(target, "deduct", budget_id, bad)
        assert done.code == 2, done
        assert "amount" in done.err
        assert done.out == ""
    assert get_budget(target, budget_id)["consumed"] == 200

    # audit: balanced
    done = audit_until_balanced(target, budget_id)
    assert done.code == 0, done
    data = done.json()
    assert data["balanced"] is True
    assert [b["budget_id"] for b in data["budgets"]] == [budget_id]
    assert data["budgets"][0]["balanced"] is True
    assert data["budgets"][0]["total"] == 10_000
    assert data["budgets"][0]["consumed"] == 200
    done = quotactl(target, "audit", budget_id)
    assert done.code == 0, done
    assert any(
        line.strip().startswith("total 10000 = main ") and line.endswith("  BALANCED")
        for line in done.out.splitlines()
    ), done

    # the budget shows up in the listing
    done = quotactl(target, "--json", "list", "--state", "active")
    assert done.code == 0, done
    assert budget_id in [b["budget_id"] for b in done.json()["budgets"]]

    # pause: spending is refused (exit 1), nothing is taken
    done = quotactl(target, "--json", "pause", budget_id, "--reason", "ctl integration")
    assert done.code == 0, done
    assert done.json()["budget"]["state"] == "PAUSED"
    done = quotactl(target, "--json", "deduct", budget_id, "5")
    assert done.code == 1, done
    assert done.json()["code"] == "BUDGET_PAUSED"
    done = quotactl(target, "deduct", budget_id, "5")
    assert done.code == 1, done
    assert done.out.splitlines()[0].split() == ["result:", "BUDGET_PAUSED"]
    assert get_budget(target, budget_id)["consumed"] == 200

    # resume: spending works again
    done = quotactl(target, "--json", "resume", budget_id)
    assert done.code == 0, done
    assert done.json()["budget"]["state"] == "ACTIVE"
    done = quotactl(target, "--json", "deduct", budget_id, "5")
    assert done.code == 0, done
    assert done.json()["code"] == "OK"
    budget = get_budget(target, budget_id)
    assert (budget["consumed"], budget["available"]) == (205, 9_795)


def test_unknown_budget_is_exit_3(center_target: str) -> None:
    done = quotactl(center_target, "get", new_budget_id())
    assert done.code == 3, done
    assert done.out == ""
    assert done.err.startswith("quotactl: error: ")
    assert done.err.count("\n") == 1


def test_unreachable_target_is_exit_4() -> None:
    done = quotactl(UNREACHABLE, "--timeout", "5", "get", "anything")
    assert done.code == 4, done
    assert done.out == ""
    assert done.err.startswith("quotactl: error: ")
    assert done.err.count("\n") == 1


def test_help_lists_every_subcommand() -> None:
    done = quotactl(UNREACHABLE, "--help")
    assert done.code == 0, done
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in done.out, name
    assert "exit codes:" in done.out
