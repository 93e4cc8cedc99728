"""One agent process against two on one port: the comparison runs and answers every call.

Nothing here asserts a speed (the machine is shared); the tool fails on any error or refusal,
and its table must name both set-ups with a throughput each.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_one_round_compares_one_process_with_two() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.agent_processes",
            "--rounds",
            "1",
            "--seconds",
            "0.4",
            "--clients",
            "2",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("Deduct")}
    assert set(rows) == {"Deduct", "DeductBatch×100"}
    for row in rows.values():
        one, two, ratio = re.findall(r"[\d,.]+", row.split(maxsplit=1)[1])
        assert float(one.replace(",", "")) > 0
        assert float(two.replace(",", "")) > 0
        assert float(ratio) > 0


def test_bad_options_are_refused() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loadtest.agent_processes", "--processes", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--processes must be at least 2" in out.stderr
