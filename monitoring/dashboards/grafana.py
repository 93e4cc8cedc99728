"""A small model of Grafana dashboards and its JSON (dashboard schema 39, Grafana 10 and later).

Plain data, no SDK: a panel is a title, a kind and its queries; grid positions and panel ids are
computed from the order of rows and panels, so adding a panel never means renumbering by hand.
Every query names the data source through the ``${datasource}`` template variable, so one JSON
file serves any Prometheus the importer picks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Json = dict[str, Any]
Kind = Literal["timeseries", "stat", "table", "state-timeline"]

GRID_WIDTH = 24
SCHEMA_VERSION = 39
DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str = ""
    # An instant query: a table's rows, or a stat that would be costly over every step of a range.
    instant: bool = False


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    kind: Kind = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    # Colour of values below the first step, then (value, colour) steps upwards.
    base_colour: str = "green"
    steps: tuple[tuple[float, str], ...] = ()
    min: float | None = None
    max: float | None = None
    stacked: bool = False
    # A stat that shows which series is there (a budget's mode) rather than its value.
    show_name: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True, slots=True)
class Dashboard:
    name: str  # the JSON file's stem
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Json, ...] = ()
    links: tuple[Json, ...] = ()


def datasource_variable() -> Json:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def query_variable(name: str, label: str, query: str, *, multi: bool = False) -> Json:
    """A variable whose values are label values read from Prometheus (refreshed with the time range)."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "current": {},
        "hide": 0,
        "includeAll": multi,
        # With "All", match every value rather than list them all in the query.
        "allValue": ".*" if multi else None,
        "multi": multi,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1,
    }


def dashboards_link(tag: str) -> Json:
    """A drop-down of every dashboard carrying ``tag``, keeping the time range and variables."""
    return {
        "type": "dashboards",
        "title": "Quota dashboards",
        "tags": [tag],
        "asDropdown": True,
        "includeVars": True,
        "keepTime": True,
    }


def url_link(title: str, url: str) -> Json:
    return {"type": "link", "title": title, "url": url, "targetBlank": True, "icon": "doc"}


def _thresholds(panel: Panel) -> Json:
    steps: list[Json] = [{"color": panel.base_colour, "value": None}]
    steps += [{"color": colour, "value": value} for value, colour in panel.steps]
    return {"mode": "absolute", "steps": steps}


def _field_defaults(panel: Panel) -> Json:
    defaults: Json = {"unit": panel.unit, "thresholds": _thresholds(panel)}
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.kind == "timeseries":
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if panel.stacked else 0,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if panel.stacked else "none", "group": "A"},
            # Thresholds drawn as lines show how close a series is to an alert.
            "thresholdsStyle": {"mode": "line" if panel.steps else "off"},
        }
    else:
        defaults["color"] = {"mode": "thresholds"}
    if panel.kind == "table":
        # Values coloured by the thresholds, as a stat's background is.
        defaults["custom"] = {"align": "auto", "cellOptions": {"type": "color-text"}}
    return defaults


def _options(panel: Panel) -> Json:
    legend: Json = {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []}
    tooltip: Json = {"mode": "multi", "sort": "desc"}
    if panel.kind == "timeseries":
        return {"legend": legend, "tooltip": tooltip}
    if panel.kind == "state-timeline":
        return {
            "legend": legend,
            "tooltip": tooltip,
            "mergeValues": True,
            "showValue": "never",
            "alignValue": "left",
            "rowHeight": 0.9,
        }
    if panel.kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "name" if panel.show_name else "value",
        }
    return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}


def _target(query: Query, ref_id: str, table: bool) -> Json:
    return {
        "refId": ref_id,
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": not query.instant,
        "instant": query.instant,
        "format": "table" if table else "time_series",
    }


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> Json:
    table = panel.kind == "table"
    out: Json = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": _field_defaults(panel), "overrides": []},
        "options": _options(panel),
        "targets": [_target(q, chr(ord("A") + i), table) for i, q in enumerate(panel.queries)],
    }
    if table:
        # One row per series: its labels and value, without the evaluation time.
        out["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]
    return out


def row_json(title: str, panel_id: int, y: int) -> Json:
    return {
        "id": panel_id,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
        "panels": [],
    }


def layout(rows: tuple[Row, ...]) -> list[Json]:
    """Rows one under the other, each row's panels left to right, wrapping at the grid's width."""
    panels: list[Json] = []
    y = 0
    for row in rows:
        panels.append(row_json(row.title, len(panels) + 1, y))
        y += 1
        x, line_height = 0, 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panels.append(panel_json(panel, len(panels) + 1, x, y))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return panels


def dashboard_json(d: Dashboard, tag: str) -> Json:
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": [tag],
        "editable": True,
        "graphTooltip": 1,  # a shared crosshair: one instant read across every panel
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "refresh": "30s",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {"list": []},
        "links": list(d.links),
        "templating": {"list": [datasource_variable(), *d.variables]},
        "panels": layout(d.rows),
    }


def render(d: Dashboard, tag: str) -> str:
    """The file's text: stable key order and indentation, so that a diff shows what changed."""
    return json.dumps(dashboard_json(d, tag), indent=2, ensure_ascii=False) + "\n"
