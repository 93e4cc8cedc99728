"""The runbooks: one per alert, named after it and naming it, indexed, complete, and citing only
quotactl commands and options that exist and PromQL that parses."""

from __future__ import annotations

import argparse
import functools
import re
import shlex
from pathlib import Path

import pytest

from quotactl.main import build_parser
from tests.monitoring.promql import promtool_parse_errors
from tests.monitoring.sources import RUNBOOKS, alerts, fenced, runbook, runbook_exprs, runbook_names

SECTIONS = ("## What it means", "## Impact", "## Confirm", "## Act", "## Escalate")
_INLINE = re.compile(r"`(quotactl\s[^`]+)`")
_FENCED = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.MULTILINE | re.DOTALL)
Options = dict[str, argparse.Action]


@functools.cache
def _quotactl() -> tuple[Options, dict[str, Options]]:
    """quotactl's global options, and each command's options."""
    parser = build_parser({})
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser._option_string_actions, {
        name: sub._option_string_actions for name, sub in commands.choices.items()
    }


def quotactl_problems(command_line: str) -> list[str]:
    """What in ``command_line`` quotactl does not have: the command, or an option of it."""
    global_options, commands = _quotactl()
    tokens = shlex.split(command_line)
    command: str | None = None
    i = tokens.index("quotactl") + 1
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("-"):
            if command is None:
                if token not in commands:
                    return [f"{command_line}: no command {token!r}"]
                command = token
            i += 1
            continue
        name = token.split("=", 1)[0]
        action = (commands[command] if command else global_options).get(name)
        if action is None:
            return [f"{command_line}: no option {name!r}" + (f" of {command!r}" if command else "")]
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            return []  # quotactl prints and stops there
        i += 1 if action.nargs == 0 or "=" in token else 2
    return [] if command else [f"{command_line}: no command"]


def quotactl_lines(markdown: str) -> list[str]:
    """Every quotactl invocation: lines of ```sh blocks, and inline code spans."""
    lines = [
        line.strip()
        for block in fenced(markdown, "sh")
        for line in block.splitlines()
        if line.strip().startswith("quotactl ")
    ]
    prose = _FENCED.sub("", markdown)
    return lines + [" ".join(span.split()) for span in _INLINE.findall(prose)]


def _pages() -> list[Path]:
    return sorted(RUNBOOKS.glob("*.md"))


def test_every_alert_has_a_runbook_named_after_it_that_names_it() -> None:
    for alert in alerts():
        name = alert["alert"]
        path = RUNBOOKS / f"{name}.md"
        assert path.exists(), f"no runbook {path}"
        assert runbook(name).startswith(f"# {name}\n"), name


def test_every_runbook_belongs_to_an_alert() -> None:
    assert runbook_names() == {a["alert"] for a in alerts()}


def test_the_index_links_every_runbook() -> None:
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    missing = {name for name in runbook_names() if f"]({name}.md)" not in index}
    assert not missing


def test_runbooks_have_every_section_and_say_what_money_is_at_stake() -> None:
    for name in runbook_names():
        text = runbook(name)
        positions = [text.find(section + "\n") for section in SECTIONS]
        assert -1 not in positions, (name, dict(zip(SECTIONS, positions, strict=True)))
        assert positions == sorted(positions), name
        impact = text[positions[1] : positions[2]]
        assert "oversell" in impact, f"{name}: the impact does not say whether it can oversell"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.stem)
def test_runbooks_cite_real_quotactl_commands(page: Path) -> None:
    problems = [
        p for line in quotactl_lines(page.read_text(encoding="utf-8")) for p in quotactl_problems(line)
    ]
    assert not problems


def test_quotactl_commands_cited_are_checked() -> None:
    assert quotactl_problems("quotactl --target c:50051 --json audit --state active") == []
    assert quotactl_problems("quotactl settle <budget> <holder> --consumed <units> --reason why") == []
    assert quotactl_problems("quotactl rebuild b")
    assert quotactl_problems("quotactl settle b h --force")
    assert quotactl_problems("quotactl --target c:50051")
    assert quotactl_problems("quotactl --target c:50051 --help") == []
    markdown = "run `quotactl get b`\n```sh\nquotactl list --limit 1\n```\n1. then\n\n   ```sh\n   quotactl pause b\n   ```\n"
    assert quotactl_lines(markdown) == ["quotactl list --limit 1", "quotactl pause b", "quotactl get b"]


def test_runbooks_promql_is_valid(tmp_path: Path) -> None:
    exprs = [expr for _, expr in runbook_exprs()]
    assert exprs
    assert not promtool_parse_errors(exprs, tmp_path)
