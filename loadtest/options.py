"""The settings one load-test run uses, read from Locust's options, and what makes them unusable.

Locust's command line, its environment variables and its web UI's form all end up as option
values; a run reads them when it starts (`Settings.read`), so what was typed in the web UI is
what the run uses. Nothing here imports Locust (and with it gevent's monkey-patching), so the
tests can check the rules in a plain process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from loadtest.catalog import SCENARIOS, SKEW, Scenario

# The options this load test adds to Locust's, by their attribute name in Locust's namespace.
KEYS = (
    "scenario",
    "center",
    "agents",
    "budget",
    "tally_dir",
    "duplicate_fraction",
    "max_amount",
    "call_timeout",
)
DEFAULT_SCENARIO = "steady"

_N = TypeVar("_N", int, float)


class OptionsError(ValueError):
    """Options a run cannot start with; every problem found, not just the first."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def addresses(text: str) -> tuple[str, ...]:
    """``HOST:PORT`` entries of a comma-separated list, blanks dropped."""
    return tuple(a.strip() for a in text.split(",") if a.strip())


@dataclass(frozen=True, slots=True)
class Settings:
    scenario: str
    center: str
    agents: tuple[str, ...]
    budget: str
    tally_dir: str
    duplicate_fraction: float
    max_amount: int  # 0: the scenario's own
    call_timeout: float

    @property
    def spec(self) -> Scenario:
        return SCENARIOS[self.scenario]

    @classmethod
    def read(cls, values: Mapping[str, object]) -> Settings:
        """Settings from option values (typed, or the web form's strings); OptionsError if unusable."""
        problems: list[str] = []
        settings = cls(
            scenario=str(values.get("scenario") or DEFAULT_SCENARIO),
            center=str(values.get("center") or "").strip(),
            agents=addresses(str(values.get("agents") or "")),
            budget=str(values.get("budget") or "").strip(),
            tally_dir=str(values.get("tally_dir") or ""),
            duplicate_fraction=_number(values, "duplicate_fraction", float, 0.05, problems),
            max_amount=_number(values, "max_amount", int, 0, problems),
            call_timeout=_number(values, "call_timeout", float, 10.0, problems),
        )
        problems += settings.problems()
        if problems:
            raise OptionsError(problems)
        return settings

    def problems(self) -> list[str]:
        found = []
        if self.scenario not in SCENARIOS:
            found.append(f"unknown scenario {self.scenario!r} (one of {', '.join(SCENARIOS)})")
        if not self.budget:
            found.append("--budget (or LOADTEST_BUDGET) is required")
        if not self.center and not self.agents:
            found.append("give --center and/or --agents (or LOADTEST_CENTER / LOADTEST_AGENTS)")
        if not 0 <= self.duplicate_fraction <= 1:
            found.append(f"--duplicate-fraction must be 0..1, got {self.duplicate_fraction}")
        if self.max_amount < 0:
            found.append(f"--max-amount must be positive (or 0), got {self.max_amount}")
        if self.call_timeout <= 0:
            found.append(f"--call-timeout must be positive, got {self.call_timeout}")
        if self.scenario == "skewed_regions" and len(self.agents) != len(SKEW):
            found.append(f"skewed_regions needs --agents with {len(SKEW)} addresses, got {len(self.agents)}")
        if self.scenario == "center_direct" and not self.center:
            found.append("center_direct needs --center")
        return found


def _number(
    values: Mapping[str, object], key: str, kind: Callable[[str], _N], default: _N, problems: list[str]
) -> _N:
    raw = values.get(key)
    if raw is None or raw == "":
        return default
    try:
        return kind(str(raw))
    except ValueError:
        problems.append(f"--{key.replace('_', '-')} is not a number: {raw!r}")
        return default


def scenario_for(given: str, class_names: Sequence[str]) -> str:
    """The scenario a Locust process runs: --scenario, else the one user class named, else steady.

    Naming user classes on the command line is the older way to pick a scenario; a class that
    contradicts --scenario, or several classes, is refused (one run checks one scenario).
    """
    by_class = {s.user_class: s.name for s in SCENARIOS.values()}
    unknown = [c for c in class_names if c not in by_class]
    if unknown:
        raise OptionsError([f"not a scenario's user class: {', '.join(unknown)}"])
    named = sorted({by_class[c] for c in class_names})
    if given:
        if given not in SCENARIOS:
            raise OptionsError([f"unknown scenario {given!r} (one of {', '.join(SCENARIOS)})"])
        if named and named != [given]:
            raise OptionsError(
                [f"--scenario {given} runs {SCENARIOS[given].user_class}; do not name other user classes"]
            )
        return given
    if len(named) > 1:
        raise OptionsError([f"one scenario per run: pick it with --scenario, not {len(named)} user classes"])
    return named[0] if named else DEFAULT_SCENARIO
