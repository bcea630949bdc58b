"""The work pool: its own threads, a bounded queue, and a refusal at once when full."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bulkhead.errors import RateLimited
from bulkhead.limits.pool import WorkPool


def test_work_runs_on_the_pools_own_threads() -> None:
    pool = WorkPool("argon", workers=2, queue=0)
    try:
        name = asyncio.run(pool.run(lambda: threading.current_thread().name))
    finally:
        pool.close()
    assert name.startswith("argon")


@pytest.mark.serial
def test_overflow_is_refused_at_once_and_the_slots_come_back() -> None:
    pool = WorkPool("argon", workers=1, queue=2, code="argon_busy")
    gate = threading.Event()

    async def scenario() -> tuple[list[object], float]:
        held = [asyncio.ensure_future(pool.run(gate.wait)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert pool.pending == 3
        started = time.perf_counter()
        with pytest.raises(RateLimited) as refused:
            await pool.run(time.sleep, 5)
        waited = time.perf_counter() - started
        assert refused.value.code == "argon_busy" and refused.value.retry_after_s >= 1
        gate.set()
        return list(await asyncio.gather(*held)), waited

    try:
        results, waited = asyncio.run(scenario())
        assert results == [True, True, True] and waited < 0.1
        assert pool.pending == 0
        assert asyncio.run(pool.run(lambda: 7)) == 7
    finally:
        pool.close()


def test_a_caller_that_stops_waiting_still_holds_its_slot_until_the_work_ends() -> None:
    pool = WorkPool("argon", workers=1, queue=0)
    gate = threading.Event()

    async def scenario() -> None:
        job = asyncio.ensure_future(pool.run(gate.wait))
        await asyncio.sleep(0.05)
        job.cancel()  # The client hung up; the thread is still busy.
        await asyncio.sleep(0.05)
        assert pool.pending == 1
        with pytest.raises(RateLimited):
            await pool.run(lambda: None)
        gate.set()
        for _ in range(100):
            if pool.pending == 0:
                break
            await asyncio.sleep(0.01)
        assert pool.pending == 0

    try:
        asyncio.run(scenario())
    finally:
        pool.close()
