"""Weighted deficit round robin over a shared deployment's slots."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from bulkhead.limits import LimitExceeded
from bulkhead.limits.fairshare import FairQueue, FairQueues


async def _serve(queue: FairQueue, tenant: str, weight: int, order: list[str], hold: float) -> None:
    await queue.acquire(tenant, weight)
    order.append(tenant)
    await asyncio.sleep(hold)
    queue.release(tenant)


def test_free_slots_go_straight_through() -> None:
    async def run() -> None:
        queue = FairQueue(2, max_wait_s=1)
        await queue.acquire("a")
        await queue.acquire("b")
        assert queue.in_flight == 2 and queue.waiting == 0
        queue.release("a")
        queue.release("b")
        assert queue.in_flight == 0

    asyncio.run(run())


def test_a_flooding_tenant_does_not_starve_a_quiet_one() -> None:
    async def run() -> list[str]:
        queue = FairQueue(1, max_wait_s=10)
        order: list[str] = []
        flood = [asyncio.create_task(_serve(queue, "a", 1, order, 0.001)) for _ in range(50)]
        await asyncio.sleep(0)
        quiet = [asyncio.create_task(_serve(queue, "b", 1, order, 0.001)) for _ in range(3)]
        await asyncio.gather(*flood, *quiet)
        return order

    order = asyncio.run(run())
    # b's three calls are served within the first few slots, alternating with a's.
    assert [i for i, t in enumerate(order) if t == "b"] == [2, 4, 6]


@pytest.mark.parametrize("weights", [(1, 1), (1, 3), (2, 5)])
def test_backlogged_tenants_share_by_weight(weights: tuple[int, int]) -> None:
    async def run() -> Counter[str]:
        queue = FairQueue(4, max_wait_s=30)
        order: list[str] = []
        tasks = [
            asyncio.create_task(_serve(queue, name, w, order, 0.0005))
            for _ in range(400)
            for name, w in zip("ab", weights, strict=True)
        ]
        await asyncio.gather(*tasks)
        # Measure while both are backlogged: until either has had 300 of its 400 calls.
        counts: Counter[str] = Counter()
        for tenant in order:
            counts[tenant] += 1
            if max(counts.values()) == 300:
                break
        return counts

    served = asyncio.run(run())
    share = served["b"] / (served["a"] + served["b"])
    assert share == pytest.approx(weights[1] / sum(weights), abs=0.06)


def test_waiting_is_bounded_and_never_leaks_a_slot() -> None:
    async def run() -> None:
        queue = FairQueue(1, max_wait_s=0.05)
        await queue.acquire("a")
        with pytest.raises(LimitExceeded) as info:
            await queue.acquire("b")
        assert info.value.limit == "capacity"
        assert info.value.retry_after_s >= 1
        queue.release("a")
        assert queue.in_flight == 0  # the timed-out waiter did not get the slot
        await queue.acquire("c")
        assert queue.in_flight == 1

    asyncio.run(run())


def test_a_cancelled_waiter_gives_its_slot_on() -> None:
    async def run() -> None:
        queue = FairQueue(1, max_wait_s=5)
        await queue.acquire("a")
        gone = asyncio.create_task(queue.acquire("b"))
        after = asyncio.create_task(queue.acquire("c"))
        await asyncio.sleep(0.01)
        gone.cancel()
        queue.release("a")
        await asyncio.wait_for(after, 1)
        assert queue.in_flight == 1

    asyncio.run(run())


def test_queues_per_deployment_follow_their_option() -> None:
    queues = FairQueues(default_capacity=8, max_wait_s=1)
    assert queues.for_deployment("d1", {}).capacity == 8
    assert queues.for_deployment("d2", {"max_in_flight": "3"}).capacity == 3
    assert queues.for_deployment("d2", {"max_in_flight": "5"}).capacity == 5
    assert queues.for_deployment("d3", {"max_in_flight": "x"}).capacity == 8
    with pytest.raises(ValueError):
        FairQueue(0, max_wait_s=1)


def test_a_flood_leaves_headroom_while_another_tenant_is_around() -> None:
    now = [0.0]

    async def run() -> None:
        queue = FairQueue(8, max_wait_s=0.05, recent_s=10, clock=lambda: now[0])
        for _ in range(8):
            await queue.acquire("flood")  # alone: it may use every slot
        for _ in range(8):
            queue.release("flood")
        await queue.acquire("quiet")
        queue.release("quiet")
        for _ in range(6):
            await queue.acquire("flood")
        with pytest.raises(LimitExceeded):
            await queue.acquire("flood")  # two slots are kept for the quiet tenant
        await queue.acquire("quiet")  # which gets them at once
        await queue.acquire("quiet")
        queue.release("quiet")
        queue.release("quiet")
        now[0] += 11  # the quiet tenant has gone quiet: the flood may fill up again
        await queue.acquire("flood")
        await queue.acquire("flood")
        assert queue.in_flight == 8

    asyncio.run(run())
