"""The benchmark's PNG: throughput against ceiling per path, and remaining budget per holder in a drain.

Drawn with matplotlib (the ``loadtest`` extra) through its Agg canvas, without pyplot, so no
display and no global figure state are involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def write_png(report: dict[str, Any], path: Path) -> None:
    fig = Figure(figsize=(11, 9), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    bars, drain = fig.subplots(2, 1, height_ratios=[1, 1])
    _throughput(bars, report)
    _drain(drain, report)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def _throughput(ax: Any, report: dict[str, Any]) -> None:
    paths: dict[str, dict[str, Any]] = report["paths"]
    rows = [(key, p) for key, p in paths.items() if p["ceiling"] is not None]
    labels, ratios = [], []
    for _, p in reversed(rows):
        labels.append(f"{p['label']}\nvs {paths[p['ceiling']]['label']}")
        ratios.append(p["ratio"] or 0.0)
    y = list(range(len(rows)))
    ax.barh(y, [1.0] * len(y), color="#d9d9d9", label="ceiling (= 1)")
    ax.barh(y, ratios, height=0.5, color="#3b75af", label="path throughput / ceiling")
    for i, (_, p) in enumerate(reversed(rows)):
        text = f"{p['closed']['deductions_per_s']:,.0f} of {p['ceiling_deductions_per_s']:,.0f} deductions/s"
        ax.text((p["ratio"] or 0.0) + 0.01, i, text, va="center", fontsize=8)
        if p.get("target_ratio") is not None:
            colour = "#2e7d32" if p.get("met") else "#c62828"
            ax.plot([p["target_ratio"]] * 2, [i - 0.35, i + 0.35], color=colour, linewidth=2.5)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, max([1.1, *(r * 1.05 for r in ratios)]))
    ax.set_xlabel("throughput / ceiling (closed loop, saturation); vertical marks: targets")
    ax.set_title("Throughput against ceiling per path")
    ax.legend(loc="lower right", fontsize=8)


def _drain(ax: Any, report: dict[str, Any]) -> None:
    drain: dict[str, Any] = report["drain"]
    samples: list[dict[str, Any]] = drain["samples"]
    ax.set_title(
        f"Remaining budget per holder while draining {drain['budget_id']} (total {drain['total']:,})"
    )
    ax.set_xlabel("seconds since the drain started (Admin Audit every 100 ms)")
    ax.set_ylabel("units")
    if not samples:
        ax.text(0.5, 0.5, "no samples", ha="center", transform=ax.transAxes)
        return
    t = [s["t"] for s in samples]
    ax.plot(
        t, [s["available"] for s in samples], color="black", linewidth=2, label="available (whole budget)"
    )
    ax.plot(t, [s["main"] for s in samples], linewidth=1.5, label="main")
    holders = sorted({h for s in samples for h in s["holders"]})
    for holder in holders:
        ax.plot(t, [s["holders"].get(holder, 0) for s in samples], linewidth=1, label=holder)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
