"""Locust scenarios against the quota service (the locustfile; `python -m loadtest.run` drives it).

Pick a scenario with --scenario (or, in the web UI, its drop-down under "Custom parameters")::

    locust -f loadtest/scenarios.py --headless -u 20 -r 10 -t 30s --scenario flash_sale \\
        --center 127.0.0.1:50051 --agents 127.0.0.1:50061,127.0.0.1:50062,127.0.0.1:50063 \\
        --budget lt-1 --tally-dir /tmp/tallies

Naming one user class instead (`... FlashSaleUser`) still works. Every option below is also a
field of the web UI's form and reads an environment variable (LOADTEST_CENTER, ...); a run reads
them when it starts, so what the form says is what the run uses. Tasks are tagged by kind
(deduct, return, reserve, balance), so `--exclude-tags` can narrow a scenario's mix.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from locust import User, constant, events, tag, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import STATE_RUNNING, STATE_SPAWNING, WorkerRunner
from locust.web import WebUI

from loadtest.catalog import REGIONS, SCENARIOS, SKEW
from loadtest.grpc_user import INSUFFICIENT, TALLY, QuotaUser, Target
from loadtest.options import KEYS, OptionsError, Settings, scenario_for

log = logging.getLogger(__name__)

# The web UI fills its form by parsing the command line again with a fresh parser, so an
# option's default is what the form shows. A scenario picked by naming its user class is no
# option value: once on_init has worked it out, it becomes the default from here.
_form_defaults: dict[str, str] = {}


def add_options(parser: LocustArgumentParser) -> None:
    """The load test's options, each a field of the web UI's "Custom parameters" too.

    They go on the parser itself: an argument group's add_argument is argparse's own, which
    drops Locust's web UI flags, and the options would not reach the form.
    """
    parser.add_argument(
        "--scenario",
        choices=list(SCENARIOS),
        default=_form_defaults.get("scenario", ""),
        env_var="LOADTEST_SCENARIO",
        include_in_web_ui=True,
        help="what the users do (loadtest/catalog.py); default: the one user class named, else steady",
    )
    parser.add_argument(
        "--center",
        default="",
        env_var="LOADTEST_CENTER",
        include_in_web_ui=True,
        help="center gRPC host:port",
    )
    parser.add_argument(
        "--agents",
        default="",
        env_var="LOADTEST_AGENTS",
        include_in_web_ui=True,
        help="region agents' gRPC host:port, comma-separated (skewed_regions needs three)",
    )
    parser.add_argument(
        "--budget",
        default="",
        env_var="LOADTEST_BUDGET",
        include_in_web_ui=True,
        is_required=True,
        help="budget id the users spend",
    )
    parser.add_argument(
        "--tally-dir",
        default="",
        env_var="LOADTEST_TALLY_DIR",
        include_in_web_ui=True,
        help="directory each process writes its counts to, for loadtest.check",
    )
    parser.add_argument(
        "--duplicate-fraction",
        type=float,
        default=0.05,
        env_var="LOADTEST_DUPLICATE_FRACTION",
        include_in_web_ui=True,
        help="share of deductions and returns that repeat an earlier request (expected answer: EXISTS)",
    )
    parser.add_argument(
        "--max-amount",
        type=int,
        default=0,
        env_var="LOADTEST_MAX_AMOUNT",
        include_in_web_ui=True,
        help="largest amount one call asks for (0: the scenario's default)",
    )
    parser.add_argument(
        "--call-timeout",
        type=float,
        default=10.0,
        env_var="LOADTEST_CALL_TIMEOUT",
        include_in_web_ui=True,
        help="gRPC deadline of one call, in seconds",
    )


@dataclass(slots=True)
class Run:
    """The settings of the run under way, read when it started."""

    settings: Settings | None = None


RUN = Run()


def option_values(environment: Environment) -> dict[str, object]:
    options = environment.parsed_options
    return {key: getattr(options, key, None) for key in KEYS}


def run_only(environment: Environment, scenario: str) -> None:
    """Let the runner spawn only the scenario's user class (every class stays loaded)."""
    environment.user_classes = [USERS[scenario]]


def on_init(environment: Environment, web_ui: WebUI | None = None, **_: Any) -> None:
    """Work out the scenario; refuse a run that cannot start, or say why in the web UI later.

    Workers get the master's options with each start, so they check nothing here and keep
    every user class loaded: the master (or the web UI) picks which one runs.
    """
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    if getattr(options, "class_picker", False):
        sys.exit(
            "loadtest: pick the scenario with --scenario (a drop-down in the web UI), not --class-picker"
        )
    try:
        options.scenario = scenario_for(str(options.scenario or ""), list(options.user_classes or ()))
    except OptionsError as exc:
        sys.exit(f"loadtest: {exc}")
    _form_defaults["scenario"] = options.scenario
    run_only(environment, options.scenario)
    if web_ui is not None:
        check_swarm_requests(environment, web_ui)
    if options.headless or getattr(options, "autostart", False):
        try:
            Settings.read(option_values(environment))
        except OptionsError as exc:
            sys.exit(f"loadtest: {exc}")


def check_swarm_requests(environment: Environment, web_ui: WebUI) -> None:
    """Check the web form's options before Locust starts a run with them, and switch scenarios.

    A form Locust would accept but the users could not run with (no budget, skewed_regions
    without three agents, ...) is answered with the problems, which the UI shows, and nothing
    starts. The scenario picked decides the user class, while no test is running.
    """
    app = web_ui.app
    if app is None:
        return
    endpoint = "locust.swarm"
    start: Callable[[], Any] = app.view_functions[endpoint]

    def swarm() -> ResponseReturnValue:
        form = {key: request.form[key] for key in KEYS if key in request.form}
        try:
            settings = Settings.read({**option_values(environment), **form})
        except OptionsError as exc:
            return refuse(environment, str(exc))
        runner = environment.runner
        running = runner is not None and runner.state in (STATE_RUNNING, STATE_SPAWNING)
        current = getattr(environment.parsed_options, "scenario", "")
        if running and settings.scenario != current:
            return refuse(environment, f"stop the {current} test before switching to {settings.scenario}")
        if not running:
            run_only(environment, settings.scenario)
        return cast(ResponseReturnValue, start())

    # Locust's own view keeps doing the work; its login check comes first, as for every view.
    app.view_functions[endpoint] = web_ui.auth_required_if_enabled(swarm)  # type: ignore[no-untyped-call]


def refuse(environment: Environment, problem: str) -> ResponseReturnValue:
    """The answer the web UI shows in its form when a start is refused."""
    return jsonify({"success": False, "message": f"loadtest: {problem}", "host": environment.host})


def on_test_start(environment: Environment, **_: Any) -> None:
    """Read the run's settings now: the web UI may have changed them since the last run."""
    TALLY.clear()
    try:
        RUN.settings = Settings.read(option_values(environment))
    except OptionsError as exc:
        RUN.settings = None
        if not isinstance(environment.runner, WorkerRunner):
            log.error("loadtest: the users will stop at once: %s", exc)
        return
    if not isinstance(environment.runner, WorkerRunner):
        s = RUN.settings
        targets = ",".join(s.agents) if s.agents and s.scenario != "center_direct" else s.center
        log.info("loadtest: %s on budget %s via %s", s.scenario, s.budget, targets)


# Locust's EventHook.add_listener is untyped.
events.init_command_line_parser.add_listener(add_options)  # type: ignore[no-untyped-call]
events.init.add_listener(on_init)  # type: ignore[no-untyped-call]
events.test_start.add_listener(on_test_start)  # type: ignore[no-untyped-call]


def _agents(settings: Settings) -> list[Target]:
    labels = (
        REGIONS
        if len(settings.agents) == len(REGIONS)
        else tuple(f"agent{i}" for i in range(len(settings.agents)))
    )
    return [Target(a, label) for a, label in zip(settings.agents, labels, strict=True)]


def _center(settings: Settings) -> list[Target]:
    return [Target(settings.center, "center")] if settings.center else []


class ScenarioUser(QuotaUser):
    """Takes the run's settings as they were when it started; `scenario` names its catalog entry."""

    abstract = True
    scenario = ""
    wait_time = constant(0)

    def on_start(self) -> None:
        settings = RUN.settings
        if settings is None:
            raise StopUser()
        spec = SCENARIOS[self.scenario]
        self.budget_id = settings.budget
        self.duplicate_fraction = settings.duplicate_fraction
        self.max_amount = settings.max_amount or spec.max_amount
        self.call_timeout = settings.call_timeout
        self.record_times = spec.scarce
        self.record_phases = spec.phases
        self.targets = self.choose_targets(settings)
        if not self.targets:
            raise StopUser()
        TALLY.budget_id = self.budget_id

    def choose_targets(self, settings: Settings) -> list[Target]:
        """The agents when given, else the center."""
        return _agents(settings) or _center(settings)


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

    def choose_targets(self, settings: Settings) -> list[Target]:
        return _center(settings)


class SkewedRegionsUser(ScenarioUser):
    """Deductions and returns spread 80/15/5 over three agents."""

    scenario = "skewed_regions"

    def on_start(self) -> None:
        super().on_start()
        if len(self.targets) != len(SKEW):
            raise StopUser()
        self.weights = list(SKEW)

    def choose_targets(self, settings: Settings) -> list[Target]:
        return _agents(settings)

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


# The user class of each scenario, for --scenario and the web UI's drop-down.
USERS: dict[str, type[User]] = {
    cls.scenario: cls for cls in (SteadyUser, FlashSaleUser, DrainUser, SkewedRegionsUser, CenterDirectUser)
}
