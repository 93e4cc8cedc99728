"""Log output of the center and the agent: text for a terminal, JSON lines for a log pipeline.

``LOG_FORMAT=json`` (QUOTA_CENTER_ / REGION_AGENT_) writes one JSON object a line through
python-json-logger: ``timestamp``, ``level``, ``logger``, ``message``, and the fields a line
carries (a call's ``method``, ``code``, ``budget_id``, ``request_id``, ``latency_ms``: see
quota_rules.call_log), so a pipeline can filter on them without parsing the message.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, fmt: str, *, component: str) -> None:
    """Send the process's log to stderr at ``level`` in ``fmt`` (checked by the settings)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{message}{levelname}{name}",
                style="{",
                rename_fields={"levelname": "level", "name": "logger"},
                static_fields={"component": component},
                timestamp=True,
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
