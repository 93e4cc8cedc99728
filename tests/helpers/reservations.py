"""Reservation calls over gRPC, for the reservation tests."""

from __future__ import annotations

from prometheus_client import REGISTRY

from quota.v1 import common_pb2 as pb
from tests.helpers.center import Client

EXPIRED = pb.RESULT_CODE_EXPIRED
CANCELLED = pb.RESULT_CODE_CANCELLED
CONFIRMED = pb.RESULT_CODE_CONFIRMED
UNKNOWN = pb.RESULT_CODE_UNKNOWN_REQUEST
EXCEEDS = pb.RESULT_CODE_EXCEEDS_DEDUCTED


async def reserve(
    client: Client, budget_id: str, rid: str, amount: int, ttl_ms: int = 0
) -> pb.ReserveResponse:
    return await client.quota.Reserve(
        pb.ReserveRequest(budget_id=budget_id, request_id=rid, amount=amount, ttl_ms=ttl_ms)
    )


async def confirm(client: Client, budget_id: str, rid: str, amount: int) -> pb.ConfirmResponse:
    return await client.quota.Confirm(
        pb.ConfirmRequest(budget_id=budget_id, reservation_id=rid, amount=amount)
    )


async def cancel(client: Client, budget_id: str, rid: str) -> pb.CancelResponse:
    return await client.quota.Cancel(pb.CancelRequest(budget_id=budget_id, reservation_id=rid))


def ended(outcome: str) -> float:
    """``quota_reservations_total{outcome}`` of this process (the center runs in a thread of it)."""
    return REGISTRY.get_sample_value("quota_reservations_total", {"outcome": outcome}) or 0.0
