"""Fixtures of the deployment tests: each ci/ values file of the chart, and what it renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.chart import CI_VALUES, Obj, render_file


@pytest.fixture(params=CI_VALUES, ids=[path.stem for path in CI_VALUES])
def ci_values(request: pytest.FixtureRequest) -> Path:
    """One of the chart's example values files (each test runs with every one)."""
    path: Path = request.param
    return path


@pytest.fixture
def objects(ci_values: Path) -> list[Obj]:
    """The objects that values file renders, hooks included."""
    return render_file(ci_values)
