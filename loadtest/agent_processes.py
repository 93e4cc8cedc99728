"""One agent process or several on one port: what more processes per machine buy, measured here.

``python -m loadtest.agent_processes [--processes 2] [--rounds 3]`` starts, in turn, one agent
server and then ``--processes`` of them listening on the same loopback port (grpcio sets
``SO_REUSEPORT``, so the kernel spreads connections over them). Each process is the agent's own
``QuotaServicer`` over a journal and record log of its own, as an agent with its own id would
be, holding a slice that never runs out (no center: what is compared is the serving). The same
client processes (``--clients``, each one channel, so one connection) drive both set-ups in a
closed loop, ``Deduct`` and ``DeductBatch``×100; the table gives the median deductions a second
of each and their ratio. Rounds alternate the set-ups, so drift of a shared machine spreads
over both. More processes can only help where there are cores for them: the clients run on the
same machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from devstack import free_port
from loadtest.bench.client import CLOSED, DEDUCT, DEDUCT_BATCH, Clients, Job
from loadtest.grpc_versions import BUDGET, serving
from quota_rules.build import add_version

IN_FLIGHT = 128  # Deduct calls in flight over all clients (DeductBatch: 16), as in loadtest.bench


def measure(clients: Clients, processes: int, seconds: float, tag: str) -> dict[str, float]:
    port = free_port()
    with serving([("agent", port)] * processes):
        time.sleep(1.0)  # every process listening, not only the first
        out: dict[str, float] = {}
        for method, key, in_flight, batch in (
            (DEDUCT, "deduct", IN_FLIGHT, 1),
            (DEDUCT_BATCH, "batch", 16, 100),
        ):
            start = time.monotonic() + 0.3
            jobs = [
                Job(
                    target=f"127.0.0.1:{port}",
                    method=method,
                    budget_id=BUDGET,
                    prefix=f"{tag}-{key}-{time.time_ns()}",
                    mode=CLOSED,
                    start_at=start,
                    warmup_s=0.5,
                    seconds=seconds,
                    batch=batch,
                    concurrency=max(1, in_flight // clients.count),
                )
                for _ in range(clients.count)
            ]
            clients.start(jobs)
            outcome = clients.collect()
            if outcome.failure or outcome.errors or outcome.items_refused:
                raise RuntimeError(
                    f"{processes} process(es), {method}: {outcome.failure or dict(outcome.errors)}"
                )
            out[key] = outcome.items_ok / seconds
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.agent_processes",
        description="Compare one agent process with several on one port (SO_REUSEPORT), each with its own "
        "journal and record log, under the same closed-loop Deduct and DeductBatch load on loopback.",
    )
    add_version(p)
    p.add_argument(
        "--processes", type=int, default=2, help="agent processes of the second set-up (default 2)"
    )
    p.add_argument("--clients", type=int, default=4, help="client processes, one connection each (default 4)")
    p.add_argument("--rounds", type=int, default=3, help="rounds over both set-ups (default 3)")
    p.add_argument("--seconds", type=float, default=2.5, help="window of each measurement (default 2.5)")
    args = p.parse_args(argv)
    if args.processes < 2 or args.clients < 1 or args.rounds < 1 or args.seconds <= 0:
        p.error("--processes must be at least 2, --clients and --rounds at least 1, --seconds positive")
    clients = Clients(args.clients)
    results: dict[int, list[dict[str, float]]] = {1: [], args.processes: []}
    try:
        for n in range(args.rounds):
            for processes in results:
                print(
                    f"round {n + 1}/{args.rounds}: {processes} agent process(es)", file=sys.stderr, flush=True
                )
                results[processes].append(measure(clients, processes, args.seconds, f"r{n}p{processes}"))
    finally:
        clients.close()
    one, many = results[1], results[args.processes]
    print(f"{'path':<16} {'1 process':>12} {f'{args.processes} processes':>13} {'ratio':>6}")
    for key, label in (("deduct", "Deduct"), ("batch", "DeductBatch×100")):
        ratio = statistics.median(b[key] / a[key] for a, b in zip(one, many, strict=True))
        print(
            f"{label:<16} {statistics.median(r[key] for r in one):>10,.0f}/s"
            f" {statistics.median(r[key] for r in many):>11,.0f}/s {ratio:>6.2f}"
        )
    print(
        f"deductions a second, median of {args.rounds} rounds of {args.seconds:g} s; {args.clients} client "
        f"processes on the same machine ({IN_FLIGHT} Deduct or 16 DeductBatch calls in flight in all)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
