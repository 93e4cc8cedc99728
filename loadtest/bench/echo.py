"""Echo servers of ``quota.v1.Quota``: the ceilings the benchmark measures the real paths against.

``python -m loadtest.bench.echo --port N`` answers ``Deduct`` and ``DeductBatch`` with an OK
response built from the request (same fields, hence the same bytes on the wire as a real
answer) and does nothing else: the ceiling of the gRPC transport in this process model.

With ``--redis-url URL`` every deduction first runs one trivial Lua script (``INCRBY`` of one
key) by ``EVALSHA`` through the center's own Redis client (``quota_center.buckets.client``):
the ceiling of a unary call that needs one Redis round trip. ``DeductBatch`` then sends one
``EVALSHA`` per item in one pipeline, as the center's batch does on one Redis server.

Both are one process with one asyncio loop and a ``grpc.aio`` server, registered through the
same ``add_servicer`` as the center and the agent, plus the standard health service.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from quota.v1 import common_pb2 as pb
from quota.v1 import quota_pb2_grpc
from quota_center.buckets.client import connect
from quota_center.buckets.scripts import RedisClient
from quota_rules import loops
from quota_rules.build import add_version
from quota_rules.decoding import add_servicer
from quota_rules.loops import EVENT_LOOPS

Context = grpc.aio.ServicerContext[Any, Any]

SCRIPT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
KEY = "bench:echo"
OK = pb.RESULT_CODE_OK


def _answer(request: pb.DeductRequest) -> pb.DeductResponse:
    return pb.DeductResponse(
        code=OK, budget_id=request.budget_id, request_id=request.request_id, amount=request.amount
    )


class _Unimplemented(quota_pb2_grpc.QuotaServicer):
    """The calls the benchmark does not make: UNIMPLEMENTED."""

    async def _refuse(self, context: Context) -> NoReturn:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "the echo server answers Deduct and DeductBatch only"
        )

    async def Return(self, request: pb.ReturnRequest, context: Context) -> pb.ReturnResponse:
        await self._refuse(context)

    async def Reserve(self, request: pb.ReserveRequest, context: Context) -> pb.ReserveResponse:
        await self._refuse(context)

    async def Confirm(self, request: pb.ConfirmRequest, context: Context) -> pb.ConfirmResponse:
        await self._refuse(context)

    async def Cancel(self, request: pb.CancelRequest, context: Context) -> pb.CancelResponse:
        await self._refuse(context)

    async def GetBalance(self, request: pb.GetBalanceRequest, context: Context) -> pb.GetBalanceResponse:
        await self._refuse(context)


class EchoServicer(_Unimplemented):
    async def Deduct(self, request: pb.DeductRequest, context: Context) -> pb.DeductResponse:
        return _answer(request)

    async def DeductBatch(self, request: pb.DeductBatchRequest, context: Context) -> pb.DeductBatchResponse:
        return pb.DeductBatchResponse(results=[_answer(item) for item in request.items])


class EvalshaEchoServicer(_Unimplemented):
    def __init__(self, redis: RedisClient, sha: str) -> None:
        self.redis = redis
        self.sha = sha

    async def _run(self, request: pb.DeductRequest) -> pb.DeductResponse:
        await self.redis.evalsha(self.sha, 1, KEY, request.amount)
        return _answer(request)

    async def Deduct(self, request: pb.DeductRequest, context: Context) -> pb.DeductResponse:
        return await self._run(request)

    async def DeductBatch(self, request: pb.DeductBatchRequest, context: Context) -> pb.DeductBatchResponse:
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in request.items:
                pipe.evalsha(self.sha, 1, KEY, item.amount)
            await pipe.execute()
        return pb.DeductBatchResponse(results=[_answer(item) for item in request.items])


async def serve(port: int, redis_url: str | None) -> None:
    redis: RedisClient | None = None
    servicer: quota_pb2_grpc.QuotaServicer
    if redis_url is None:
        servicer = EchoServicer()
    else:
        redis = connect(redis_url)
        sha = str(await redis.script_load(SCRIPT))
        servicer = EvalshaEchoServicer(redis, sha)
    server = grpc.aio.server()
    add_servicer(quota_pb2_grpc.add_QuotaServicer_to_server, servicer, server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)
    if redis is not None:
        await redis.aclose()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench.echo",
        description="An echo quota.v1.Quota server (Deduct, DeductBatch) on 127.0.0.1, the benchmark's ceiling.",
    )
    add_version(p)
    p.add_argument("--port", type=int, required=True, help="gRPC port on 127.0.0.1")
    p.add_argument("--redis-url", help="run one EVALSHA of a trivial Lua script per deduction on this Redis")
    p.add_argument(
        "--event-loop", choices=EVENT_LOOPS, default="asyncio", help="event loop (default asyncio)"
    )
    args = p.parse_args(argv)
    loops.run(serve(args.port, args.redis_url), args.event_loop)


if __name__ == "__main__":
    main()
