"""The Grafana dashboards: checked in as build.py writes them, well formed, every query valid PromQL
on the `${datasource}` variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from monitoring.dashboards import build
from tests.monitoring.promql import for_promtool, promtool_parse_errors
from tests.monitoring.sources import ROOT, Json, dashboard_exprs, dashboards, panels

DATASOURCE = "${datasource}"
GRID_WIDTH = 24


def test_checked_in_dashboards_are_what_build_writes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitoring.dashboards.build", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert set(dashboards()) == set(build.rendered())


def test_check_fails_on_a_changed_a_missing_or_a_stray_file(tmp_path: Path) -> None:
    assert build.main(["--out", str(tmp_path)]) == 0
    assert build.main(["--check", "--out", str(tmp_path)]) == 0
    overview = tmp_path / "overview.json"
    text = overview.read_text(encoding="utf-8")

    overview.write_text(text.replace("Overview", "Overveiw"), encoding="utf-8")
    assert build.main(["--check", "--out", str(tmp_path)]) == 1
    overview.unlink()
    assert build.main(["--check", "--out", str(tmp_path)]) == 1
    overview.write_text(text, encoding="utf-8")
    (tmp_path / "old.json").write_text("{}", encoding="utf-8")
    assert build.main(["--check", "--out", str(tmp_path)]) == 1


def test_dashboards_have_unique_uids_and_panel_ids() -> None:
    loaded = dashboards()
    assert {"overview.json", "budget.json", "agents.json", "dependencies.json"} <= set(loaded)
    uids = [d["uid"] for d in loaded.values()]
    assert len(uids) == len(set(uids)), uids
    for name, dashboard in loaded.items():
        ids = [p["id"] for p in panels(dashboard)]
        assert len(ids) == len(set(ids)), name
        assert all(isinstance(i, int) and i > 0 for i in ids), name


def _cells(panel: Json) -> set[tuple[int, int]]:
    g = panel["gridPos"]
    return {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}


def test_panels_fit_the_grid_without_overlapping() -> None:
    for name, dashboard in dashboards().items():
        taken: set[tuple[int, int]] = set()
        for panel in panels(dashboard):
            g = panel["gridPos"]
            assert g["x"] >= 0, (name, panel["title"])
            assert g["x"] + g["w"] <= GRID_WIDTH, (name, panel["title"])
            cells = _cells(panel)
            assert not cells & taken, (name, panel["title"])
            taken |= cells


def test_every_query_uses_the_datasource_variable() -> None:
    for name, dashboard in dashboards().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", name
        assert variables["datasource"]["query"] == "prometheus", name
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["targets"], (name, panel["title"])
            assert panel["datasource"]["uid"] == DATASOURCE, (name, panel["title"])
            assert all(t["datasource"]["uid"] == DATASOURCE for t in panel["targets"]), (name, panel["title"])
        for variable in variables.values():
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == DATASOURCE, (name, variable["name"])


def test_the_budget_dashboard_is_templated_by_budget() -> None:
    budget = dashboards()["budget.json"]
    assert "budget" in {v["name"] for v in budget["templating"]["list"]}
    exprs = [t["expr"] for p in panels(budget) for t in p.get("targets", [])]
    assert all('budget="$budget"' in e for e in exprs), exprs


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    exprs = [for_promtool(e) for _, e in dashboard_exprs()]
    assert not promtool_parse_errors(exprs, tmp_path)


def test_invalid_promql_is_reported(tmp_path: Path) -> None:
    assert promtool_parse_errors(["sum(rate(x[5m])"], tmp_path)
