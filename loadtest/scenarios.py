"""Locust scenarios against the quota service (the locustfile; `python -m loadtest.run` drives it).

Pick a scenario by its user class::

    locust -f loadtest/scenarios.py --headless -u 20 -r 10 -t 30s \\
        --center 127.0.0.1:50051 --agents 127.0.0.1:50061,127.0.0.1:50062,127.0.0.1:50063 \\
        --budget lt-1 --tally-dir /tmp/tallies FlashSaleUser

Tasks are tagged by kind (deduct, return, reserve, balance), so `--exclude-tags` can narrow a
scenario's mix. Every option below also reads an environment variable (LOADTEST_CENTER, ...).
"""

from __future__ import annotations

import random
import sys
from typing import Any

from locust import constant, events, tag, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import WorkerRunner

from loadtest.catalog import REGIONS, SCENARIOS, SKEW
from loadtest.grpc_user import INSUFFICIENT, TALLY, QuotaUser, Target


def add_options(parser: LocustArgumentParser) -> None:
    group = parser.add_argument_group("quota load test")
    group.add_argument("--center", default="", env_var="LOADTEST_CENTER", help="center gRPC host:port")
    group.add_argument(
        "--agents",
        default="",
        env_var="LOADTEST_AGENTS",
        help="region agents' gRPC host:port, comma-separated (skewed_regions needs three)",
    )
    group.add_argument("--budget", default="", env_var="LOADTEST_BUDGET", help="budget id the users spend")
    group.add_argument(
        "--tally-dir",
        default="",
        env_var="LOADTEST_TALLY_DIR",
        help="directory each process writes its counts to, for loadtest.check",
    )
    group.add_argument(
        "--duplicate-fraction",
        type=float,
        default=0.05,
        env_var="LOADTEST_DUPLICATE_FRACTION",
        help="share of deductions and returns that repeat an earlier request (expected answer: EXISTS)",
    )
    group.add_argument(
        "--max-amount",
        type=int,
        default=0,
        env_var="LOADTEST_MAX_AMOUNT",
        help="largest amount one call asks for (0: the scenario's default)",
    )
    group.add_argument(
        "--call-timeout",
        type=float,
        default=10.0,
        env_var="LOADTEST_CALL_TIMEOUT",
        help="gRPC deadline of one call, in seconds",
    )


def check_options(environment: Environment, **_: Any) -> None:
    """Refuse to start without a budget or targets (workers get the master's options later)."""
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    problems = []
    if not options.budget:
        problems.append("--budget (or LOADTEST_BUDGET) is required")
    if not options.center and not options.agents:
        problems.append("give --center and/or --agents (or LOADTEST_CENTER / LOADTEST_AGENTS)")
    if not 0 <= options.duplicate_fraction <= 1:
        problems.append(f"--duplicate-fraction must be 0..1, got {options.duplicate_fraction}")
    if options.max_amount < 0:
        problems.append(f"--max-amount must be positive (or 0), got {options.max_amount}")
    chosen = set(getattr(options, "user_classes", None) or ())
    agents = [a for a in str(options.agents).split(",") if a.strip()]
    if "SkewedRegionsUser" in chosen and len(agents) != len(SKEW):
        problems.append(f"SkewedRegionsUser needs --agents with {len(SKEW)} addresses, got {len(agents)}")
    if "CenterDirectUser" in chosen and not options.center:
        problems.append("CenterDirectUser needs --center")
    if problems:
        sys.exit("loadtest: " + "; ".join(problems))


# Locust's EventHook.add_listener is untyped.
events.init_command_line_parser.add_listener(add_options)  # type: ignore[no-untyped-call]
events.init.add_listener(check_options)  # type: ignore[no-untyped-call]


def _agents(environment: Environment) -> list[Target]:
    options = environment.parsed_options
    addresses = [a.strip() for a in str(getattr(options, "agents", "")).split(",") if a.strip()]
    labels = REGIONS if len(addresses) == len(REGIONS) else tuple(f"agent{i}" for i in range(len(addresses)))
    return [Target(a, label) for a, label in zip(addresses, labels, strict=True)]


def _center(environment: Environment) -> list[Target]:
    center = str(getattr(environment.parsed_options, "center", ""))
    return [Target(center, "center")] if center else []


class ScenarioUser(QuotaUser):
    """Reads the options into the user; `scenario` names its entry in catalog.SCENARIOS."""

    abstract = True
    scenario = ""
    wait_time = constant(0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        spec = SCENARIOS[self.scenario]
        self.budget_id = str(getattr(options, "budget", ""))
        self.duplicate_fraction = float(getattr(options, "duplicate_fraction", 0.0))
        self.max_amount = int(getattr(options, "max_amount", 0)) or spec.max_amount
        self.call_timeout = float(getattr(options, "call_timeout", 10.0))
        self.record_times = spec.scarce
        self.record_phases = spec.phases
        self.targets = self.choose_targets()
        if not self.targets or not self.budget_id:
            raise StopUser()
        TALLY.budget_id = self.budget_id

    def choose_targets(self) -> list[Target]:
        """The agents when given, else the center."""
        return _agents(self.environment) or _center(self.environment)


class SteadyUser(ScenarioUser):
    """A steady mix on a large budget; nothing should be refused."""

    scenario = "steady"

    @tag("deduct")
    @task(6)
    def deduct_some(self) -> None:
        self.deduct(random.randint(1, self.max_amount))

    @tag("return")
    @task(2)
    def return_some(self) -> None:
        self.refund()

    @tag("reserve")
    @task(2)
    def reserve_some(self) -> None:
        self.reserve_and_settle()

    @tag("balance")
    @task(1)
    def read_balance(self) -> None:
        self.balance()


class CenterDirectUser(SteadyUser):
    """The steady mix straight to the center."""

    scenario = "center_direct"

    def choose_targets(self) -> list[Target]:
        return _center(self.environment)


class SkewedRegionsUser(ScenarioUser):
    """Deductions and returns spread 80/15/5 over three agents."""

    scenario = "skewed_regions"

    def on_start(self) -> None:
        super().on_start()
        if len(self.targets) != len(SKEW):
            raise StopUser()
        self.weights = list(SKEW)

    def choose_targets(self) -> list[Target]:
        return _agents(self.environment)

    @tag("deduct")
    @task(8)
    def deduct_some(self) -> None:
        self.deduct(random.randint(1, self.max_amount))

    @tag("return")
    @task(2)
    def return_some(self) -> None:
        self.refund()


class FlashSaleUser(ScenarioUser):
    """Everyone rushes a small budget, one unit per order, and keeps trying after the sell-out."""

    scenario = "flash_sale"

    @tag("deduct")
    @task
    def buy(self) -> None:
        self.deduct(random.randint(1, self.max_amount))


class DrainUser(ScenarioUser):
    """Random sizes; after a refusal of n, this user asks at most n - 1; done after a refusal of 1."""

    scenario = "drain"

    def on_start(self) -> None:
        super().on_start()
        self.cap = self.max_amount

    @tag("deduct")
    @task
    def take(self) -> None:
        if self.cap == 0:
            raise StopUser()
        amount = random.randint(1, self.cap)
        if self.deduct(amount) == INSUFFICIENT:
            # What is left only shrinks (no returns here), so a refusal of n holds for later.
            self.cap = amount - 1
