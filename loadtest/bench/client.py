"""The benchmark's load generator: client processes that each drive one asyncio loop of grpc.aio calls.

Client model: ``--clients`` worker processes (multiprocessing, spawn start method), started
once and reused by every measurement. Each one runs one asyncio loop with one ``grpc.aio``
channel (one HTTP/2 connection) per target and gets a :class:`Job` over a pipe:

* closed loop: ``concurrency`` tasks, each keeping one call in flight (the next starts when the
  previous one ends); latency is measured from the call's start;
* open loop: calls started on a fixed schedule (``rate`` calls/s per process, the processes'
  schedules interleaved) whether or not earlier ones have ended; latency is measured from the
  *scheduled* start, so a server (or a client) falling behind shows up as latency.

Every job has a warm-up, then a window of ``seconds``: a call counts (throughput, latency) when
it ends inside the window. The processes share ``time.monotonic`` (CLOCK_MONOTONIC), so they
start together at ``start_at`` and their windows line up; the parent merges their outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import grpc

from quota.v1 import common_pb2 as pb
from quota.v1 import quota_pb2_grpc

DEDUCT = "Deduct"
DEDUCT_BATCH = "DeductBatch"
CLOSED = "closed"
OPEN = "open"

CALL_TIMEOUT_S = 10.0
MAX_IN_FLIGHT = 4096  # per process in open loop; past it a scheduled call is dropped and counted
OK_CODES = (pb.RESULT_CODE_OK, pb.RESULT_CODE_EXISTS)


@dataclass(frozen=True, slots=True)
class Job:
    target: str
    method: str  # DEDUCT or DEDUCT_BATCH
    budget_id: str
    prefix: str  # request ids are prefix-process-n(-item)
    mode: str  # CLOSED or OPEN
    start_at: float  # time.monotonic() at which the warm-up begins
    warmup_s: float
    seconds: float
    batch: int = 1
    amount: int = 1
    concurrency: int = 1  # closed loop: calls in flight in this process
    rate: float = 0.0  # open loop: calls/s started by this process
    phase: float = 0.0  # open loop: offset of this process's schedule, in intervals (0..1)
    trace: bool = False  # keep every call counted: (when it ended, its latency, answered OK)
    # Closed loop: spread the calls over these targets (call k of a task goes to targets[k % n]);
    # empty: all go to ``target``.
    targets: tuple[str, ...] = ()


@dataclass(slots=True)
class Outcome:
    """What one process saw in the window (and, for errors, outside it too)."""

    calls: int = 0  # calls that ended in the window without a gRPC error
    items_ok: int = 0  # deductions answered OK (or EXISTS)
    items_refused: int = 0  # deductions answered with another result code (INSUFFICIENT, ...)
    errors: Counter[str] = field(default_factory=Counter)  # gRPC status names, DROPPED, CLIENT_ERROR
    latencies: list[float] = field(default_factory=list)  # seconds, one per call counted in `calls`
    failure: str | None = None  # the job itself failed
    # With Job.trace: (time.monotonic() at the end, latency in seconds, OK) of every counted call.
    trace: list[tuple[float, float, bool]] = field(default_factory=list)

    def merge(self, other: Outcome) -> None:
        self.calls += other.calls
        self.items_ok += other.items_ok
        self.items_refused += other.items_refused
        self.errors.update(other.errors)
        self.latencies.extend(other.latencies)
        self.trace.extend(other.trace)
        if other.failure is not None and self.failure is None:
            self.failure = other.failure


class _Recorder:
    def __init__(self, job: Job) -> None:
        self.begin = job.start_at + job.warmup_s
        self.end = self.begin + job.seconds
        self.out = Outcome()
        self.trace = job.trace

    def ended(self, started: float, ok: int, refused: int) -> None:
        now = time.monotonic()
        if self.begin <= now < self.end:
            self.out.calls += 1
            self.out.items_ok += ok
            self.out.items_refused += refused
            self.out.latencies.append(now - started)
            if self.trace:
                self.out.trace.append((now, now - started, ok > 0))

    def failed(self, what: str) -> None:
        self.out.errors[what] += 1


Call = Callable[[int], Awaitable[tuple[int, int]]]


def _caller(stub: quota_pb2_grpc.QuotaAsyncStub, job: Job, process: int) -> Call:
    """A function making call number n of this process: returns (deductions OK, refused)."""
    prefix = f"{job.prefix}-{process}-"
    if job.method == DEDUCT:

        async def deduct(n: int) -> tuple[int, int]:
            request = pb.DeductRequest(budget_id=job.budget_id, request_id=f"{prefix}{n}", amount=job.amount)
            reply = await stub.Deduct(request, timeout=CALL_TIMEOUT_S)
            return (1, 0) if reply.code in OK_CODES else (0, 1)

        return deduct

    async def deduct_batch(n: int) -> tuple[int, int]:
        items = [
            pb.DeductRequest(budget_id=job.budget_id, request_id=f"{prefix}{n}-{i}", amount=job.amount)
            for i in range(job.batch)
        ]
        reply = await stub.DeductBatch(pb.DeductBatchRequest(items=items), timeout=CALL_TIMEOUT_S)
        ok = sum(1 for r in reply.results if r.code in OK_CODES)
        return ok, len(reply.results) - ok

    return deduct_batch


async def _one(call: Call, n: int, started: float, rec: _Recorder) -> None:
    try:
        ok, refused = await call(n)
    except grpc.aio.AioRpcError as exc:
        rec.failed(exc.code().name)
    except Exception as exc:
        rec.failed(f"CLIENT_ERROR:{type(exc).__name__}")
    else:
        rec.ended(started, ok, refused)


async def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _closed(call: Call, job: Job) -> Outcome:
    rec = _Recorder(job)
    numbers = itertools.count()
    await _sleep_until(job.start_at)

    async def loop() -> None:
        while True:
            started = time.monotonic()
            if started >= rec.end:
                return
            await _one(call, next(numbers), started, rec)

    await asyncio.gather(*(loop() for _ in range(job.concurrency)))
    return rec.out


async def _open(call: Call, job: Job) -> Outcome:
    rec = _Recorder(job)
    interval = 1.0 / job.rate
    pending: set[asyncio.Task[None]] = set()
    for n in itertools.count():
        due = job.start_at + (n + job.phase) * interval
        if due >= rec.end:
            break
        if due > time.monotonic():
            await _sleep_until(due)
        elif n % 16 == 0:
            await asyncio.sleep(0)  # behind schedule: start the overdue calls, but let replies in
        if len(pending) >= MAX_IN_FLIGHT:
            rec.failed("DROPPED")
            continue
        task = asyncio.create_task(_one(call, n, due, rec))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=CALL_TIMEOUT_S + 1)
    for task in list(pending):  # past every call's deadline: not answered, not left running
        task.cancel()
        rec.failed("UNFINISHED")
    return rec.out


async def run_job(channels: list[grpc.aio.Channel], job: Job, process: int) -> Outcome:
    calls = [_caller(quota_pb2_grpc.QuotaStub(channel), job, process) for channel in channels]
    spread = itertools.cycle(calls)

    async def each_in_turn(n: int) -> tuple[int, int]:
        return await next(spread)(n)

    call = calls[0] if len(calls) == 1 else each_in_turn
    if job.mode == CLOSED:
        return await _closed(call, job)
    return await _open(call, job)


async def _serve_jobs(conn: Connection, process: int) -> None:
    loop = asyncio.get_running_loop()
    channels: dict[str, grpc.aio.Channel] = {}
    try:
        while True:
            job = await loop.run_in_executor(None, conn.recv)
            if job is None:
                return
            assert isinstance(job, Job)
            for target in job.targets or (job.target,):
                if target not in channels:
                    channels[target] = grpc.aio.insecure_channel(target)
            try:
                outcome = await run_job([channels[t] for t in job.targets or (job.target,)], job, process)
            except Exception as exc:
                outcome = Outcome(failure=f"{type(exc).__name__}: {exc}")
            conn.send(outcome)
    finally:
        for channel in channels.values():
            await channel.close()


def _worker(conn: Connection, process: int) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_jobs(conn, process))


class Clients:
    """The client processes; :meth:`start` hands each a job, :meth:`collect` merges their outcomes."""

    def __init__(self, processes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[BaseProcess] = []
        for i in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, i), name=f"bench-client-{i}", daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    @property
    def count(self) -> int:
        return len(self.conns)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def start(self, jobs: list[Job]) -> None:
        for conn, job in zip(self.conns, jobs, strict=True):
            conn.send(job)

    def collect(self) -> Outcome:
        merged = Outcome()
        for conn, proc in zip(self.conns, self.procs, strict=True):
            while not conn.poll(1.0):
                if not proc.is_alive():
                    raise RuntimeError(f"client process {proc.name} died (exit {proc.exitcode})")
            merged.merge(conn.recv())
        return merged

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()
