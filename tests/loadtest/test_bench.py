"""The benchmark at a tiny size, end to end: it runs, and its report is complete and consistent.

Nothing here asserts a speed: the machine is shared. Only the report's shape and its own
arithmetic are checked.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PATHS = {
    "echo.deduct",
    "echo.batch",
    "evalsha.deduct",
    "evalsha.batch",
    "agent.deduct",
    "agent.batch",
    "center.deduct",
    "center.batch",
}

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    out = tmp_path_factory.mktemp("bench")
    json_path, png_path = out / "report.json", out / "chart.png"
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.bench", "--tiny", "--json", str(json_path), "--png", str(png_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    return done, json_path, png_path


@pytest.fixture(scope="module")
def report(run: tuple[subprocess.CompletedProcess[str], Path, Path]) -> dict[str, Any]:
    done, json_path, _ = run
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    loaded: dict[str, Any] = json.loads(json_path.read_text())
    return loaded


def test_exits_zero_and_prints_the_table(
    run: tuple[subprocess.CompletedProcess[str], Path, Path], report: dict[str, Any]
) -> None:
    done, _, _ = run
    assert "Saturation: closed loop" in done.stdout
    assert "Closed-loop latency at saturation is queueing" in done.stdout
    for path in report["paths"].values():
        assert path["label"] in done.stdout
    assert "[bench" in done.stderr  # progress goes to stderr
    assert "[bench" not in done.stdout


def test_every_path_has_throughput_and_ordered_latencies(report: dict[str, Any]) -> None:
    assert set(report["paths"]) == PATHS
    for key, path in report["paths"].items():
        for mode in ("closed", "open"):
            m = path[mode]
            assert m["calls_per_s"] > 0, (key, mode)
            assert m["deductions_per_s"] > 0, (key, mode)
            assert m["p50_ms"] <= m["p99_ms"], (key, mode)
        assert path["open"]["offered_calls_per_s"] > 0


def test_ratios_are_throughput_over_ceiling(report: dict[str, Any]) -> None:
    paths = report["paths"]
    for key, path in paths.items():
        if path["ceiling"] is None:
            assert key.startswith("echo.")
            assert path["ratio"] is None
            continue
        # The ceiling is measured again right before the path; the ratio uses that measurement.
        ceiling = path["ceiling_deductions_per_s"]
        measured = [paths[path["ceiling"]]["closed"], *paths[path["ceiling"]].get("repeats", [])]
        assert ceiling in [m["deductions_per_s"] for m in measured], key
        assert path["ratio"] == pytest.approx(path["closed"]["deductions_per_s"] / ceiling), key
        if path["target_ratio"] is not None:
            assert path["met"] == (path["ratio"] >= path["target_ratio"]), key
    names = [t["name"] for t in report["targets"]]
    assert len(names) == 4
    assert all(isinstance(t["met"], bool) for t in report["targets"])


def test_center_calls_per_thousand_is_a_number(report: dict[str, Any]) -> None:
    cpt = report["center_calls_per_thousand"]
    value = cpt["per_thousand"]
    assert isinstance(value, int | float)
    assert math.isfinite(value)
    assert value >= 0
    w = cpt["windows"]
    assert value == pytest.approx((w["forwarded"] + w["refills"]) * 1000 / w["deductions"])


def test_drain_spends_the_budget_and_the_audit_balances(report: dict[str, Any]) -> None:
    drain = report["drain"]
    assert drain["samples"], "no Audit samples"
    assert drain["balanced"], drain["mismatches"]
    assert drain["consumed"] <= drain["total"]
    first = drain["samples"][0]
    assert first["available"] == drain["total"]


def test_png_is_valid(
    run: tuple[subprocess.CompletedProcess[str], Path, Path], report: dict[str, Any]
) -> None:
    _, _, png_path = run
    data = png_path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR"
    assert length == 13
    body = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert crc == zlib.crc32(kind + body)
    width, height = struct.unpack(">II", body[:8])
    assert width > 0
    assert height > 0
    assert data.endswith(b"IEND\xaeB`\x82")
    assert report["png"] == str(png_path)


def test_the_scale_mode_runs_and_reports_every_step(tmp_path: Path) -> None:
    """``--budgets``: a tiny run prints the table with every step, the memory per idle budget, the
    page times, a complete, balanced audit and every target with its value."""
    json_path = tmp_path / "scale.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.bench",
            "--budgets",
            "120",
            "--active",
            "40",
            "--idle-seconds",
            "0.5",
            "--request-window",
            "2",
            "--json",
            str(json_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(json_path.read_text())
    assert set(report["steps"]) == {"small", "active", "many"}
    for step in report["steps"].values():
        assert step["deducts_per_s"] > 0
        assert step["center_cpu"] >= 0
        assert step["redis_commands_per_s"] >= 0
    assert report["audit"] == {
        "budgets": 120,
        "budgets_per_s": report["audit"]["budgets_per_s"],
        "balanced": True,
    }
    assert report["list_page_ms"]["p50"] > 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith("State that scales: 120 budgets, 40 active")
    assert sum(1 for line in lines if line.endswith(("met", "NOT MET"))) == 6
    assert any(line.startswith("memory per idle budget: Redis ") for line in lines)
    assert report["per_request"]["requests"] == 1_200
    r = report["per_request"]
    # Past the window Redis keeps only the ids' bits in the seen filters (bitmaps today's earlier
    # requests already made: about nothing more), far less than while claims and records lived.
    assert r["redis_window_bytes"] > 100 + r["redis_after_bytes"], r
    assert r["spend_log_bytes"] > 0
    assert report["agent_per_request"]["requests"] == 1_200
    assert any(line.startswith("per remembered request at an agent (1,200 Deducts") for line in lines)
    assert any(line.startswith("per remembered request (1,200 Deducts") for line in lines)
