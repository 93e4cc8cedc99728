"""The agent's settings read from REGION_AGENT_* variables: checked at start with a one-line error
naming the variable, readable from files, and variables that name no setting reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from region_agent.settings import SettingsError, load, unknown_variables

REQUIRED = {"REGION_AGENT_AGENT_ID": "eu-1"}


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"REGION_AGENT_LOG_LEVEL": "verbose"}, "REGION_AGENT_LOG_LEVEL='verbose' is not one of DEBUG"),
        ({"REGION_AGENT_METRICS_PORT": "65536"}, "REGION_AGENT_METRICS_PORT must be a port"),
        ({"REGION_AGENT_HEALTH_INTERVAL_MS": "0"}, "REGION_AGENT_HEALTH_INTERVAL_MS must be positive"),
        ({"REGION_AGENT_METRICS_BUDGETS": "-1"}, "REGION_AGENT_METRICS_BUDGETS must not be negative"),
    ],
)
def test_a_value_the_agent_cannot_run_with_is_one_line_naming_it(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(SettingsError) as err:
        load(REQUIRED | env)
    assert complaint in str(err.value)
    assert "\n" not in str(err.value)


def test_the_agent_id_may_come_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "id").write_text("ap-7\n")
    assert load({"REGION_AGENT_AGENT_ID_FILE": str(tmp_path / "id")}).agent_id == "ap-7"


def test_unknown_variables_are_named() -> None:
    assert unknown_variables({"REGION_AGENT_CENTER_TARGTE": "x", "REGION_AGENT_REGION": "eu"}) == [
        "REGION_AGENT_CENTER_TARGTE is not a setting and is ignored (did you mean REGION_AGENT_CENTER_TARGET?)"
    ]
