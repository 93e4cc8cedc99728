"""The rules a run's options must meet, as the command line and the web UI's form give them."""

from __future__ import annotations

import pytest

from loadtest.options import OptionsError, Settings, scenario_for

AGENTS = "a:1,b:2,c:3"


def test_the_web_forms_strings_become_typed_settings() -> None:
    form = {"scenario": "flash_sale", "center": " c:1 ", "agents": " a:1, ,b:2 ", "budget": "b"}
    settings = Settings.read({**form, "duplicate_fraction": "0.5", "max_amount": "3", "call_timeout": "2"})
    assert settings == Settings("flash_sale", "c:1", ("a:1", "b:2"), "b", "", 0.5, 3, 2.0)


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(OptionsError) as caught:
        Settings.read({"scenario": "skewed_regions", "max_amount": "many", "duplicate_fraction": 2})
    assert caught.value.problems == [
        "--max-amount is not a number: 'many'",
        "--budget (or LOADTEST_BUDGET) is required",
        "give --center and/or --agents (or LOADTEST_CENTER / LOADTEST_AGENTS)",
        "--duplicate-fraction must be 0..1, got 2.0",
        "skewed_regions needs --agents with 3 addresses, got 0",
    ]


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"scenario": "center_direct", "agents": AGENTS}, "center_direct needs --center"),
        ({"scenario": "nope", "center": "c:1"}, "unknown scenario 'nope'"),
        ({"center": "c:1", "call_timeout": 0}, "--call-timeout must be positive"),
    ],
)
def test_a_scenario_without_what_it_needs_is_refused(values: dict[str, object], problem: str) -> None:
    with pytest.raises(OptionsError, match=problem):
        Settings.read({"budget": "b", **values})


@pytest.mark.parametrize(
    ("given", "classes", "scenario"),
    [
        ("", [], "steady"),
        ("", ["DrainUser"], "drain"),
        ("drain", ["DrainUser"], "drain"),
        ("center_direct", [], "center_direct"),
    ],
)
def test_the_scenario_comes_from_the_option_or_the_one_class_named(
    given: str, classes: list[str], scenario: str
) -> None:
    assert scenario_for(given, classes) == scenario


@pytest.mark.parametrize(
    ("given", "classes"),
    [("steady", ["DrainUser"]), ("", ["DrainUser", "SteadyUser"]), ("", ["QuotaUser"])],
)
def test_contradicting_or_several_classes_are_refused(given: str, classes: list[str]) -> None:
    with pytest.raises(OptionsError):
        scenario_for(given, classes)
