"""A worker pool that cannot take a job (its executor shut down as the interpreter exits, or
no thread could be started) answers the job's caller with a clear error and counts nothing
for it: before, the step or job was counted as running and lost, its caller waited forever
and its tenant's later steps stalled behind the count (`vectors.fair`, `gateway.offload`)."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from bulkhead.errors import Unavailable
from bulkhead.gateway.offload import Offload
from bulkhead.vectors.fair import FairPool


class _Refusing(ThreadPoolExecutor):
    """Refuses the next `refusals` submits as a shut-down executor does, then takes jobs."""

    def __init__(self, refusals: int) -> None:
        super().__init__(1, thread_name_prefix="test-refusing")
        self.refusals = refusals

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self.refusals:
            self.refusals -= 1
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        return super().submit(fn, *args, **kwargs)


def test_a_fair_pool_step_that_cannot_be_submitted_answers_and_frees_its_turn() -> None:
    pool = FairPool(1, "test-fair")
    executor = _Refusing(1)
    pool._threads = executor

    async def run() -> None:
        with pytest.raises(Unavailable, match="worker threads"):
            await asyncio.wait_for(pool.run("a", lambda: "lost"), 5)
        # The count is exact: with one thread, a leaked count would hold every later step.
        assert await asyncio.wait_for(pool.run("a", lambda: "next"), 5) == "next"
        assert await asyncio.wait_for(pool.run("b", lambda: "other"), 5) == "other"

    asyncio.run(run())
    executor.shutdown()


def test_a_fair_pool_step_queued_behind_a_running_one_is_answered_when_it_cannot_start() -> None:
    """The submit that fails runs on the worker thread that just finished a step."""
    pool = FairPool(1, "test-fair")
    executor = _Refusing(0)
    pool._threads = executor
    hold = threading.Event()

    async def run() -> None:
        first = asyncio.ensure_future(pool.run("a", hold.wait, 5))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(pool.run("b", lambda: "lost"))
        await asyncio.sleep(0.05)
        executor.refusals = 1
        hold.set()
        assert await asyncio.wait_for(first, 5) is True
        with pytest.raises(Unavailable):
            await asyncio.wait_for(queued, 5)
        assert await asyncio.wait_for(pool.run("b", lambda: "next"), 5) == "next"

    asyncio.run(run())
    executor.shutdown()


def test_a_fair_pool_whose_executor_is_shut_down_answers_every_step() -> None:
    pool = FairPool(2, "test-fair")
    executor = ThreadPoolExecutor(2)
    executor.shutdown()
    pool._threads = executor

    async def run() -> None:
        steps = [pool.run(t, lambda: None) for t in ("a", "a", "b")]
        answers = await asyncio.wait_for(asyncio.gather(*steps, return_exceptions=True), 5)
        assert all(isinstance(a, Unavailable) for a in answers), answers

    asyncio.run(run())


def test_an_offload_job_that_cannot_be_submitted_answers_and_releases_its_quota() -> None:
    before = sys.getswitchinterval()
    offload = Offload(inline_bytes=0, workers=1, per_tenant=1, switch_interval_s=0.002)
    executor = _Refusing(1)
    offload._pool = executor

    async def run() -> None:
        with pytest.raises(Unavailable, match="worker threads"):
            await asyncio.wait_for(offload.run("tenant:t1", 1, lambda: "lost"), 5)
        # A leaked count would answer 429 (its one job held) or wait for a thread forever.
        assert await asyncio.wait_for(offload.run("tenant:t1", 1, lambda: "next"), 5) == "next"

    asyncio.run(run())
    executor.shutdown()
    assert sys.getswitchinterval() == before  # put back: no job is held


def _no_new_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Thread.start` fails as it does when the process is out of threads."""

    def start(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", start)


def test_a_fair_pool_step_refused_for_want_of_a_thread_is_not_uncounted_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ThreadPoolExecutor.submit` queues the work before it starts a thread: when the start
    fails, the refused step is still in the executor's queue and a live thread runs it later.
    It must then neither run nor be uncounted a second time (review8)."""
    pool = FairPool(2, "test-fair")
    executor = ThreadPoolExecutor(2, thread_name_prefix="test-fair")
    pool._threads = executor
    hold = threading.Event()
    ran: list[str] = []

    async def run() -> None:
        first = asyncio.ensure_future(pool.run("a", hold.wait, 5))
        await asyncio.sleep(0.05)  # the one thread runs it
        with monkeypatch.context() as patch:
            _no_new_thread(patch)
            with pytest.raises(Unavailable, match="worker threads"):
                await asyncio.wait_for(pool.run("b", ran.append, "lost"), 5)
        assert pool._running == {"a": 1}
        hold.set()
        assert await asyncio.wait_for(first, 5) is True
        await asyncio.sleep(0.1)  # the live thread meets the refused step in its queue
        assert pool._running == {}
        assert ran == []
        assert await asyncio.wait_for(pool.run("b", lambda: "next"), 5) == "next"
        await asyncio.sleep(0.1)  # the thread uncounts it after the answer is handed back
        assert pool._running == {}

    asyncio.run(run())
    executor.shutdown()


def test_an_offload_job_refused_for_want_of_a_thread_is_not_released_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offload = Offload(inline_bytes=0, workers=2, per_tenant=2, switch_interval_s=0.002)
    executor = ThreadPoolExecutor(2, thread_name_prefix="test-offload")
    offload._pool = executor
    hold = threading.Event()
    ran: list[str] = []

    async def run() -> None:
        first = asyncio.ensure_future(offload.run("tenant:t1", 1, hold.wait, 5))
        await asyncio.sleep(0.05)
        with monkeypatch.context() as patch:
            _no_new_thread(patch)
            with pytest.raises(Unavailable, match="worker threads"):
                await asyncio.wait_for(offload.run("tenant:t2", 1, ran.append, "lost"), 5)
        assert (offload._running, offload._held) == (1, {"tenant:t1": 1})
        hold.set()
        assert await asyncio.wait_for(first, 5) is True
        await asyncio.sleep(0.1)
        assert (offload._running, offload._held, ran) == (0, {}, [])

    asyncio.run(run())
    executor.shutdown()
