"""Reservations end when their TTL passes: released exactly once, by the expiry sweep or by a
late confirm or cancel, whichever comes first; the late call gets EXPIRED (promise 6).

``local`` is a second center process with a clock the test sets (see conftest): it confirms,
cancels and sweeps "after the TTL" while the running center's expiry loop, on the real clock,
still sees a reservation with a minute to live."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import pytest

from tests.helpers.calls import OK, assert_balanced, create, deduct, get
from tests.helpers.center import CenterThread, Client
from tests.helpers.reservations import EXCEEDS, EXPIRED, UNKNOWN, cancel, confirm, ended, reserve
from tests.quota_center.spending.conftest import Local

MINUTE = 60_000


async def test_the_sweep_releases_an_expired_reservation_once(
    client: Client, budget_id: str, local: Local
) -> None:
    await create(client, budget_id, 1_000)
    rid = f"{budget_id}-r"
    r = await reserve(client, budget_id, rid, 300, ttl_ms=MINUTE)
    keep = await reserve(client, budget_id, f"{budget_id}-keep", 100, ttl_ms=2 * MINUTE)
    assert (r.code, keep.code) == (OK, OK)
    expired = ended("expired")

    local.clock.at = r.expires_at_ms - 1
    assert await local.expiry.expire_budget(budget_id) == 0  # not yet: expires_at_ms is the first ms out
    local.clock.at = r.expires_at_ms
    assert await local.expiry.expire_budget(budget_id) == 1
    assert await local.expiry.expire_budget(budget_id) == 0
    assert ended("expired") == expired + 1
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (100, 0, 900)
    await assert_balanced(client, budget_id)

    # on the center's own (real) clock the TTL has not passed, but the reservation has ended
    late = await confirm(client, budget_id, rid, 300)
    assert (late.code, late.amount, late.released) == (EXPIRED, 0, 0)
    assert (await cancel(client, budget_id, rid)).code == EXPIRED
    assert (await cancel(client, budget_id, keep.request_id)).code == OK
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (0, 0, 1_000)
    assert ended("expired") == expired + 1
    await assert_balanced(client, budget_id)


@pytest.mark.parametrize("late_call", ["confirm", "cancel"])
async def test_a_late_call_gets_expired_before_the_sweep_ran_and_releases_once(
    client: Client, budget_id: str, local: Local, late_call: str
) -> None:
    await create(client, budget_id, 1_000)
    rid = f"{budget_id}-r"
    r = await reserve(client, budget_id, rid, 300, ttl_ms=MINUTE)
    assert r.code == OK
    expired = ended("expired")
    local.clock.at = r.expires_at_ms + 1
    if late_call == "confirm":
        answer = await local.reservations.confirm(budget_id, rid, 100)
    else:
        answer = await local.reservations.cancel(budget_id, rid)
    assert (answer.code, answer.amount, answer.released) == ("EXPIRED", 0, 0)
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (0, 0, 1_000)
    assert ended("expired") == expired + 1
    # the sweep comes afterwards and finds nothing left to release
    local.clock.at = r.expires_at_ms + MINUTE
    assert await local.expiry.expire_budget(budget_id) == 0
    assert (await local.reservations.confirm(budget_id, rid, 100)).code == "EXPIRED"
    assert (await local.reservations.cancel(budget_id, rid)).code == "EXPIRED"
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (0, 0, 1_000)
    assert ended("expired") == expired + 1
    await assert_balanced(client, budget_id)


async def test_a_confirm_just_before_the_ttl_takes_effect(
    client: Client, budget_id: str, local: Local
) -> None:
    await create(client, budget_id, 1_000)
    rid = f"{budget_id}-r"
    r = await reserve(client, budget_id, rid, 300, ttl_ms=MINUTE)
    local.clock.at = r.expires_at_ms - 1
    answer = await local.reservations.confirm(budget_id, rid, 300)
    assert (answer.code, answer.amount, answer.released) == ("OK", 300, 0)
    local.clock.at = r.expires_at_ms + MINUTE
    assert await local.expiry.expire_budget(budget_id) == 0
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (0, 300, 700)
    await assert_balanced(client, budget_id)


async def test_real_time_ttl_late_confirm_and_sweep_release_once(
    client: Client, budget_id: str, center: CenterThread
) -> None:
    """On the running center's own clock: the late confirm and the sweep race; one releases."""
    await create(client, budget_id, 1_000)
    rids = [f"{budget_id}-r{i}" for i in range(6)]
    for rid in rids:
        assert (await reserve(client, budget_id, rid, 100, ttl_ms=50)).code == OK
    await asyncio.sleep(0.1)
    answers = await asyncio.gather(*(confirm(client, budget_id, rid, 100) for rid in rids[:3]))
    assert {a.code for a in answers} == {EXPIRED}
    running = center.center
    assert running is not None
    released = center.call(lambda: running.expiry.expire_budget(budget_id))
    assert released <= 3  # only those no confirm released (none, if the center's own loop came first)
    assert {(await cancel(client, budget_id, rid)).code for rid in rids} == {EXPIRED}
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (0, 0, 1_000)
    await assert_balanced(client, budget_id)


async def test_the_running_centers_loop_releases_without_any_call(client: Client, budget_id: str) -> None:
    await create(client, budget_id, 1_000)
    assert (await reserve(client, budget_id, f"{budget_id}-r", 250, ttl_ms=20)).code == OK
    for _ in range(60):  # the loop runs every second (QUOTA_CENTER_EXPIRY_INTERVAL_MS)
        b = await get(client, budget_id)
        if b.reserved == 0:
            break
        await asyncio.sleep(0.05)
    assert (b.reserved, b.available) == (0, 1_000)
    await assert_balanced(client, budget_id)


async def test_default_and_maximum_ttl(client: Client, budget_id: str, center: CenterThread) -> None:
    await create(client, budget_id, 1_000)
    settings = center.settings
    r = await reserve(client, budget_id, f"{budget_id}-default", 10)
    assert r.code == OK
    b = await get(client, budget_id)
    assert b.reserved == 10
    longest = await reserve(client, budget_id, f"{budget_id}-max", 10, ttl_ms=settings.reservation_max_ttl_ms)
    assert longest.code == OK
    assert longest.expires_at_ms - r.expires_at_ms >= (
        settings.reservation_max_ttl_ms - settings.reservation_ttl_ms
    )
    for rid in (f"{budget_id}-default", f"{budget_id}-max"):
        assert (await cancel(client, budget_id, rid)).code == OK


BAD = grpc.StatusCode.INVALID_ARGUMENT
Call = Callable[[Client, str], Awaitable[object]]


@pytest.mark.parametrize(
    ("call", "status"),
    [
        (lambda c, b: reserve(c, b, f"{b}-r", 10, ttl_ms=-1), BAD),
        (lambda c, b: reserve(c, b, f"{b}-r", 10, ttl_ms=24 * 3600 * 1000 + 1), BAD),
        (lambda c, b: reserve(c, b, f"{b}-r", 0), BAD),
        (lambda c, b: reserve(c, b, f"{b}-r", -5), BAD),
        (lambda c, b: reserve(c, b, f"{b}-r", 2**53), BAD),
        (lambda c, b: reserve(c, b, "", 10), BAD),
        (lambda c, b: reserve(c, b, "x" * 129, 10), BAD),
        (lambda c, b: reserve(c, f"{b}-nope", f"{b}-r", 10), grpc.StatusCode.NOT_FOUND),
        (lambda c, b: confirm(c, b, f"{b}-held", 0), BAD),
        (lambda c, b: confirm(c, b, f"{b}-held", -1), BAD),
        (lambda c, b: confirm(c, b, "", 10), BAD),
        (lambda c, b: confirm(c, "{bad}", f"{b}-held", 10), BAD),
        (lambda c, b: confirm(c, f"{b}-nope", f"{b}-held", 10), grpc.StatusCode.NOT_FOUND),
        (lambda c, b: cancel(c, b, ""), BAD),
        (lambda c, b: cancel(c, f"{b}-nope", f"{b}-held"), grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    client: Client, budget_id: str, call: Call, status: grpc.StatusCode
) -> None:
    await create(client, budget_id, 1_000)
    assert (await reserve(client, budget_id, f"{budget_id}-held", 100, ttl_ms=MINUTE)).code == OK
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(client, budget_id)
    assert err.value.code() == status
    assert err.value.details()
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed, b.available) == (100, 0, 900)
    assert (await cancel(client, budget_id, f"{budget_id}-held")).code == OK


async def test_unknown_and_oversized_confirms_change_nothing(client: Client, budget_id: str) -> None:
    other = f"{budget_id}-other"
    await create(client, budget_id, 1_000)
    await create(client, other, 1_000)
    rid = f"{budget_id}-r"
    assert (await reserve(client, budget_id, rid, 100, ttl_ms=MINUTE)).code == OK
    assert (await deduct(client, budget_id, f"{budget_id}-d", 10)).code == OK
    assert (await confirm(client, budget_id, f"{budget_id}-never", 1)).code == UNKNOWN
    assert (await cancel(client, budget_id, f"{budget_id}-never")).code == UNKNOWN
    assert (await confirm(client, other, rid, 1)).code == UNKNOWN  # another budget's reservation
    assert (await confirm(client, budget_id, f"{budget_id}-d", 10)).code == UNKNOWN  # a deduction
    assert (await cancel(client, budget_id, f"{budget_id}-d")).code == UNKNOWN
    too_much = await confirm(client, budget_id, rid, 101)
    assert (too_much.code, too_much.amount, too_much.released) == (EXCEEDS, 0, 0)
    assert "100" in too_much.message
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed) == (100, 10)
    assert (await confirm(client, budget_id, rid, 100)).code == OK
    b = await get(client, budget_id)
    assert (b.reserved, b.consumed) == (0, 110)
    await assert_balanced(client, budget_id)
