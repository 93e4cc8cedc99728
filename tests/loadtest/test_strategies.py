"""The strategy comparison at a small size, end to end (a subprocess, as a user types it).

The product's strategy must drain the budget exactly with no false refusal (the command exits
non-zero otherwise); static must show its price (refusals while other regions' shares still
held budget) and the simulated local strategy its oversell. Times are printed, never asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_strategies_side_by_side() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.strategies", "--total", "4000", "--workers", "6", "--seed", "3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:]}
    assert set(rows) == {"progressive", "static", "central", "local"}
    # columns: strategy deductions oversell false-refusals leftover calls/1000 p50 p99
    assert rows["progressive"][2:5] == ["0", "0", "0"]
    assert rows["central"][2:5] == ["0", "0", "0"]
    assert rows["static"][2] == "0"
    # The busiest region's share runs out while the others still hold plenty: refused anyway.
    assert int(rows["static"][3]) > 0
    assert int(rows["local"][3]) > 0  # oversell (local's row has "(simulated)" in its name)
