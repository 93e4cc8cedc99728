"""PromQL seen from the outside: the metric names an expression reads, and promtool's verdict on it.

No PromQL parser is at hand in Python, so names are found by removing what cannot be one (strings,
label matchers, ranges, groupings, offsets, numbers, Grafana variables) and keeping the
identifiers that are not calls or keywords. promtool then parses every expression for real.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

PROMTOOL = shutil.which("promtool")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{\w+\}|\$\w+")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_NUMBER = re.compile(r"(?<![\w:.])(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "atan2", "inf", "nan", "Inf", "NaN"}
    # Modifiers also written without a label list ("group_left", "on ()" aside).
    | {"by", "without", "on", "ignoring", "group_left", "group_right"}
)
# Grafana's template queries: label_values(<series selector>, <label>).
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*$")
# Grafana variables stand for these when promtool parses a dashboard's query.
GRAFANA_SAMPLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` reads (recorded series included)."""
    label_values = _LABEL_VALUES.match(expr)
    text = label_values.group(1) if label_values else expr
    for pattern in (_STRING, _VARIABLE, _MATCHERS, _RANGE, _GROUPING, _OFFSET, _NUMBER):
        text = pattern.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        is_call = text[match.end() :].lstrip().startswith("(")
        if not is_call and match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def for_promtool(expr: str) -> str:
    """A dashboard's query as PromQL: Grafana's variables replaced by values of their kind, and of
    a template query (label_values, Grafana's own) the series selector Prometheus is sent."""
    label_values = _LABEL_VALUES.match(expr)
    if label_values:
        expr = label_values.group(1)
    for variable, value in GRAFANA_SAMPLES.items():
        expr = expr.replace(variable, value)
    # Any other variable is a label value inside a matcher ("$budget", "$agent").
    return _VARIABLE.sub("example", expr)


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool is missing: scripts/install-deps.sh installs Debian's prometheus"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def promtool_parse_errors(exprs: Iterable[str], scratch: Path) -> str:
    """promtool's complaints about ``exprs``, each checked as a recording rule; "" if none."""
    lines = ["groups:", "  - name: parsed", "    rules:"]
    for i, expr in enumerate(exprs):
        # JSON strings are YAML strings: no quoting rules of YAML's own to get wrong.
        lines += [f"      - record: parsed_{i}", f"        expr: {json.dumps(expr)}"]
    path = scratch / "parsed.rules.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = run_promtool("check", "rules", str(path))
    return "" if done.returncode == 0 else (done.stdout + done.stderr).strip()
