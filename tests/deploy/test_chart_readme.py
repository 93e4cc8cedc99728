"""The chart's README documents every value, and no value that does not exist."""

from __future__ import annotations

import re

from tests.deploy.chart import CHART, flatten, values_file

README = CHART / "README.md"


def documented_keys() -> list[str]:
    """The keys of the README's values table (rows whose first cell is a dotted key in backticks)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Values\n", 1)[1]
    section = re.split(r"^#", section, flags=re.MULTILINE)[0]  # up to the next heading
    return re.findall(r"^\| `([A-Za-z0-9.]+)` \|", section, flags=re.MULTILINE)


def test_every_value_is_documented() -> None:
    keys = set(documented_keys())
    for leaf in flatten(values_file(CHART / "values.yaml")):
        parts = leaf.split(".")
        prefixes = {".".join(parts[:n]) for n in range(1, len(parts) + 1)}
        assert prefixes & keys, f"{leaf} is not in the README's values table"


def test_every_documented_key_is_a_value() -> None:
    values = values_file(CHART / "values.yaml")
    keys = documented_keys()
    assert len(keys) == len(set(keys)), "a key is documented twice"
    for key in keys:
        node: object = values
        for part in key.split("."):
            assert isinstance(node, dict), f"README documents {key} below a leaf"
            assert part in node, f"README documents {key}, which values.yaml lacks"
            node = node[part]
