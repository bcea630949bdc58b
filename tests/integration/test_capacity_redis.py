"""`RedisCapacity` on a real Redis, several instances standing for replicas in one loop."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator

import pytest
import redis as redis_py

from bulkhead.limits import LimiterUnavailable, LimitExceeded, Limits
from bulkhead.limits.redis_limiter import RedisLimiter
from bulkhead.limits.redis_share import RedisCapacity, keys
from tests.support.redis_server import RedisServer, redis_server

_deployments = (f"dep{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as s:
        yield s


def replica(url: str, capacity: int = 2, wait_s: float = 2.0) -> RedisCapacity:
    return RedisCapacity(url, default_capacity=capacity, max_wait_s=wait_s, lease_s=3)


def in_redis(url: str, deployment: str) -> int:
    return int(redis_py.Redis.from_url(url).zcard(keys(deployment)[0]))


def test_slots_are_shared_by_replicas_and_given_back(server: RedisServer) -> None:
    dep = next(_deployments)

    async def run() -> None:
        a, b = replica(server.url), replica(server.url, wait_s=0.2)
        first = await a.acquire(dep, {}, "t")
        second = await b.acquire(dep, {"max_in_flight": "2"}, "t")
        assert in_redis(server.url, dep) == 2
        with pytest.raises(LimitExceeded) as denied:  # full, whichever replica asks
            await b.acquire(dep, {}, "t")
        assert denied.value.limit == "capacity"
        waiting = asyncio.create_task(a.acquire(dep, {}, "t"))
        await asyncio.sleep(0.05)
        first.release()
        third = await asyncio.wait_for(waiting, 1.0)  # handed over at once
        second.release()
        third.release()
        second.release()  # twice is once
        await asyncio.sleep(0.05)

    asyncio.run(run())
    assert in_redis(server.url, dep) == 0


def test_callers_that_give_up_leak_no_slot(server: RedisServer) -> None:
    dep = next(_deployments)

    async def run() -> None:
        a = replica(server.url, capacity=1, wait_s=5)
        held = await a.acquire(dep, {}, "t")
        waiters = [asyncio.create_task(a.acquire(dep, {}, "u")) for _ in range(5)]
        await asyncio.sleep(0.05)
        for w in waiters:
            w.cancel()
        asyncio.create_task(a.acquire(dep, {}, "t")).cancel()  # gone before its answer
        held.release()
        await asyncio.sleep(0.2)

    asyncio.run(run())
    assert in_redis(server.url, dep) == 0


@pytest.mark.serial
def test_a_quiet_tenant_finds_a_slot_while_another_replica_floods(server: RedisServer) -> None:
    dep = next(_deployments)

    async def run() -> float:
        flood_side, quiet_side = replica(server.url, 8, 5), replica(server.url, 8, 5)
        (await quiet_side.acquire(dep, {}, "quiet")).release()  # the quiet tenant is around
        held = [await flood_side.acquire(dep, {}, "flood") for _ in range(6)]
        more = asyncio.create_task(flood_side.acquire(dep, {}, "flood"))
        await asyncio.sleep(0.1)
        assert not more.done()  # the last two slots are the quiet tenant's headroom
        start = time.monotonic()
        slot = await quiet_side.acquire(dep, {}, "quiet")
        waited = time.monotonic() - start
        slot.release()
        for s in held:
            s.release()
        (await more).release()
        await asyncio.sleep(0.05)
        return waited

    assert asyncio.run(run()) < 0.05


def test_redis_down_fails_the_waiters_closed() -> None:
    dep = next(_deployments)
    with redis_server() as own:

        async def down() -> None:
            a = replica(own.url, capacity=1, wait_s=5)
            held = await a.acquire(dep, {}, "t")
            waiter = asyncio.create_task(a.acquire(dep, {}, "t"))
            await asyncio.sleep(0.05)
            own.stop()
            with pytest.raises(LimiterUnavailable):
                await asyncio.wait_for(waiter, 1.0)
            with pytest.raises(LimiterUnavailable):
                await a.acquire(dep, {}, "t")
            held.release()  # its lease would free it; no error surfaces here

        asyncio.run(down())


def test_the_limiters_concurrency_lease_is_renewed_while_the_call_runs(
    server: RedisServer,
) -> None:
    limiter = RedisLimiter(redis_py.Redis.from_url(server.url), lease_s=1.0)
    one = {"tenant": Limits(concurrency=1)}
    held = limiter.reserve("renewed", one, tokens=1)
    time.sleep(2.5)  # two and a half leases
    with pytest.raises(LimitExceeded):
        limiter.reserve("renewed", one, tokens=1)
    limiter.settle(held, 1)
    limiter.release(limiter.reserve("renewed", one, tokens=1))


def test_a_reservation_dropped_unsettled_stops_holding_its_slot_after_a_lease(
    server: RedisServer,
) -> None:
    limiter = RedisLimiter(redis_py.Redis.from_url(server.url), lease_s=1.0)
    one = {"tenant": Limits(concurrency=1)}
    limiter.reserve("dropped", one, tokens=1)  # a bug would drop it: nothing renews it then
    with pytest.raises(LimitExceeded):
        limiter.reserve("dropped", one, tokens=1)
    time.sleep(1.5)
    limiter.release(limiter.reserve("dropped", one, tokens=1))


def test_closing_stops_the_renewer_and_lets_go_of_the_connections(server: RedisServer) -> None:
    """At shut-down the application closes both Redis backends: no task keeps renewing,
    no connection stays open, and a slot still held lapses with its lease."""
    dep = next(_deployments)
    admin = redis_py.Redis.from_url(server.url)

    def clients() -> int:
        return len(admin.client_list())

    def settles_at(count: int) -> bool:
        # The server drops a closed connection when its event loop next reads the socket:
        # a client list taken at once may still show it.
        deadline = time.monotonic() + 2.0
        while clients() != count and time.monotonic() < deadline:
            time.sleep(0.02)
        return clients() == count

    async def run() -> None:
        before = clients()
        cap = replica(server.url)
        await cap.acquire(dep, {}, "t")  # held, never released: the renewer runs
        assert cap._tasks and clients() > before
        await cap.aclose()
        assert not cap._tasks
        assert settles_at(before)

    asyncio.run(run())
    limiter = RedisLimiter.from_url(server.url)
    before = clients()
    limiter.reserve("b", {"t": Limits(rpm=10)}, tokens=1)
    assert clients() > before
    limiter.close()
    assert settles_at(before)
