"""The report as the tables printed on stdout."""

from __future__ import annotations

import math
from typing import Any

from loadtest.phases import table


def _n(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _met(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "NOT met")


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    paths: dict[str, dict[str, Any]] = report["paths"]
    cfg = report["config"]
    out = [
        f"Saturation: closed loop, {cfg['clients']}×{cfg['concurrency']} Deduct or {cfg['clients']}×"
        f"{cfg['batch_concurrency']} DeductBatch calls in flight, {cfg['seconds']:g} s per path"
    ]
    rows = []
    for p in paths.values():
        c = p["closed"]
        ceiling = (
            f"{paths[p['ceiling']]['label']} {_n(p['ceiling_deductions_per_s'])}/s"
            if p["ceiling"]
            else "(ceiling)"
        )
        target = "-" if p["target_ratio"] is None else f"≥{p['target_ratio']:g} {_met(p['met'])}"
        rows.append(
            [
                p["label"],
                _n(c["calls_per_s"]),
                _n(c["deductions_per_s"]),
                _n(c["p50_ms"], 2),
                _n(c["p99_ms"], 2),
                ceiling,
                _n(p["ratio"], 2),
                target,
                _errors(c),
            ]
        )
    header = [
        "path",
        "calls/s",
        "deductions/s",
        "p50 ms",
        "p99 ms",
        "ceiling (deductions/s)",
        "ratio",
        "target",
        "errors",
    ]
    out.append(_table(header, rows))
    pairs = cfg.get("pairs", 1)
    out.append(
        "ratio: deductions/s of the path over those of its ceiling, measured again just before the path"
        + (
            f"; {pairs} such pairs of windows in turn, the row shows the median pair"
            + "".join(
                f"\n  {p['label']}: pair ratios {', '.join(f'{r:.2f}' for r in p['pair_ratios'])}"
                for p in paths.values()
                if p.get("pair_ratios")
            )
            if pairs > 1
            else ""
        )
    )
    out.append("")
    out.append(
        f"Fixed rate: open loop at {cfg['open_fraction']:g} × the echo calls/s of the same method, "
        "latency from the scheduled start"
    )
    rows = []
    for p in paths.values():
        o = p["open"]
        rows.append(
            [
                p["label"],
                _n(o["offered_calls_per_s"]) + ("*" if o["rate_capped"] else ""),
                _n(o["calls_per_s"]),
                _n(o["deductions_per_s"]),
                _n(o["p50_ms"], 2),
                _n(o["p99_ms"], 2),
                "yes" if o["calls_per_s"] >= 0.95 * o["offered_calls_per_s"] else "NO (latency is queueing)",
                _errors(o),
            ]
        )
    header = ["path", "offered calls/s", "calls/s", "deductions/s", "p50 ms", "p99 ms", "kept up", "errors"]
    out.append(_table(header, rows))
    if any(p["open"]["rate_capped"] for p in paths.values()):
        out.append(
            f"* the path saturates below the common rate: offered {cfg['open_fraction']:g} × its own "
            "closed-loop calls/s instead"
        )
    out.append("")
    cpt = report["center_calls_per_thousand"]
    w, whole = cpt["windows"], cpt["whole_run"]
    out.append(
        f"Center calls per 1000 deductions through the agent: {_n(cpt['per_thousand'], 2)} over the measurement "
        f"windows ({w['forwarded']:.0f} forwarded + {w['refills']:.0f} slice requests for {w['deductions']:,.0f} "
        f"deductions); {_n(whole['per_thousand'], 2)} over the whole run with warm-ups and first contact "
        f"({whole['forwarded']:.0f} + {whole['refills']:.0f} for {whole['deductions']:,.0f})"
    )
    out.append("")
    out.append("Targets")
    rows = []
    for t in report["targets"]:
        extra = f"{t['deductions_per_s']:,.0f} deductions/s" if "deductions_per_s" in t else ""
        rows.append([t["name"], _n(t["value"], 2), _met(t["met"]), extra])
    out.append(_table(["target", "value", "result", ""], rows))
    out.append("")
    d = report["drain"]
    drained = (
        f"drained after {d['drained_after_s']:.1f} s" if d["drained_after_s"] is not None else "not drained"
    )
    out.append(
        f"Drain of {d['budget_id']} (total {d['total']:,}) through the agent and the center: {drained}; "
        f"consumed {d['consumed']:,}, {d['deductions_ok']:,} OK and {d['refused']:,} refused, audit "
        f"{'balanced' if d['balanced'] else 'NOT balanced: ' + '; '.join(d['mismatches'])}"
    )
    out.append("")
    out.extend(render_sale(report["flash_sale"]))
    out.append("")
    out.append("Notes")
    out.append("* Closed-loop latency at saturation is queueing: the calls in flight wait for each other.")
    out.append(f"* Client model: {report['client_model']}")
    out.append(f"* Servers' event loop: {report['config'].get('event_loop', 'asyncio')}")
    out.append(
        "* Echo answers at once; echo+EVALSHA runs one trivial Lua script per deduction (a DeductBatch's in one"
        " Redis pipeline, as the center does); each is one process with"
        " one asyncio loop and a grpc.aio server, like the agent and the center. PostgreSQL runs with fsync off."
    )
    out.append(
        "* Before its load, each agent budget is ramped up (calls one at a time until the agent holds twice what"
        " the load keeps in flight); a step from nothing to full load is forwarded to the center until the"
        " first slice arrives."
    )
    return "\n".join(out)


def render_sale(sale: dict[str, Any]) -> list[str]:
    """The flash sale's phases, its targets and the window after a return."""
    out = [
        f"Flash sale of {sale['total']:,} units through {sale['agents']} agents: {sale['buyers']} closed-loop "
        f"buyers of 1-unit Deducts for {sale['seconds']:g} s; center calls from the center's metrics"
    ]
    if not sale["sold_out"]:
        out.append(
            f"  NOT sold out: {sale['sold']:,} sold in {sale['seconds']:g} s (give more --sale-seconds)"
        )
        return out
    out.extend(table(sale))
    if sale["errors"]:
        out.append(f"errors: {', '.join(f'{k} {v}' for k, v in sorted(sale['errors'].items()))}")
    if sale.get("cost"):
        out.append(
            "What the sale cost the center (its own counters and the agents' forwards, over the whole sale): "
            + ", ".join(f"{k} {v:,.0f}" for k, v in sale["cost"].items())
        )
    w = sale.get("window")
    if w is not None:
        out.append(
            f"Window after a return: {w['trials']} Returns of {w['returned_each']} units at the center after the"
            f" sell-out, each agent timed from the Return's answer to its first OK: p50 {_n(w['p50_ms'], 1)} ms,"
            f" p99 {_n(w['p99_ms'], 1)} ms, max {_n(w['max_ms'], 1)} ms over {w['samples']} samples"
            f" ({w['not_served']} not served within 5 s)"
        )
    return out


def _errors(m: dict[str, Any]) -> str:
    errors: dict[str, int] = m["errors"]
    return ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "0"
