"""The encoder's build and the offload's heavy jobs share one switch interval per process.

The build raises it for its span (no other thread's objects among its token strings), the
offload lowers it while a job runs (the event loop waits 1 ms at most for the lock).  The
gateway builds after its first answer, where jobs run beside it, and fine-tuning can build
on a thread of its own: whatever the order, the interval ends as it was, a running job
keeps it low, and a thread let in during the build keeps the lock for a moment only.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from bulkhead.gateway.offload import Offload
from bulkhead.limits import _o200k, tokens
from bulkhead.limits.tokens import O200kCounter

MIB = 1024 * 1024
REAL_RANKS = _o200k.ranks


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[float]:
    """A fresh build each test; the interval put back whatever a failure left."""
    before = sys.getswitchinterval()
    tokens._core_bpe.cache_clear()
    yield before
    tokens._core_bpe.cache_clear()
    sys.setswitchinterval(before)


def _ranks_doing(step: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """The build runs `step` inside its span, then goes on."""

    def ranks() -> dict[bytes, int]:
        step()
        return REAL_RANKS()

    monkeypatch.setattr(_o200k, "ranks", ranks)


def test_a_job_that_starts_during_a_build_on_another_thread_leaves_it_as_it_was(
    _fresh: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fine-tuning's estimate builds on a thread of its own while a large request arrives:
    the job must not save the build's raised value and put it back for good (5 s: the
    event loop then waits seconds behind any busy thread)."""
    inside, go = threading.Event(), threading.Event()

    def wait_inside() -> None:
        inside.set()
        go.wait(10)

    _ranks_doing(wait_inside, monkeypatch)
    builder = threading.Thread(target=O200kCounter().build_here)
    builder.start()
    assert inside.wait(10)
    offload, job_may_end = Offload(switch_interval_s=0.001), threading.Event()

    async def beside() -> None:
        job = asyncio.ensure_future(offload.run("tenant:a", MIB, job_may_end.wait, 10))
        await asyncio.sleep(0.05)  # the job runs: the interval lowered
        go.set()
        await asyncio.to_thread(builder.join, 10)  # the build ends while the job runs
        job_may_end.set()
        await job
        await asyncio.sleep(0.05)  # the job's done-callback runs on its worker

    asyncio.run(beside())
    assert not builder.is_alive()
    assert sys.getswitchinterval() == _fresh


def test_a_job_that_ends_during_a_build_on_the_event_loop_leaves_it_as_it_was(
    _fresh: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway builds on the event loop right after its first answer; a job running
    then ends on its worker thread in the middle of the build: the build must not put
    back the job's lowered value for good (1 ms)."""
    offload, job_may_end = Offload(switch_interval_s=0.001), threading.Event()

    def job_ends() -> None:
        job_may_end.set()
        deadline = time.monotonic() + 10
        while offload._held and time.monotonic() < deadline:
            time.sleep(0.01)

    _ranks_doing(job_ends, monkeypatch)

    async def first_answer() -> None:
        job = asyncio.ensure_future(offload.run("tenant:a", MIB, job_may_end.wait, 10))
        await asyncio.sleep(0.05)
        O200kCounter().build_here()  # as `gateway/admit.py` does, on the loop's thread
        await job
        await asyncio.sleep(0.05)

    asyncio.run(first_answer())
    assert sys.getswitchinterval() == _fresh


def test_a_running_job_keeps_the_interval_low_through_a_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another tenant's large request on a worker thread while the event loop builds: with
    the interval raised, the loop waited seconds for the lock each time the worker had it."""
    seen: list[float] = []
    _ranks_doing(lambda: seen.append(sys.getswitchinterval()), monkeypatch)
    offload, job_may_end = Offload(switch_interval_s=0.001), threading.Event()

    async def first_answer() -> None:
        job = asyncio.ensure_future(offload.run("tenant:a", MIB, job_may_end.wait, 10))
        await asyncio.sleep(0.05)
        O200kCounter().build_here()
        job_may_end.set()
        await job
        await asyncio.sleep(0.05)

    asyncio.run(first_answer())
    assert seen == [0.001]


@pytest.mark.serial
def test_a_busy_thread_let_in_during_the_build_keeps_the_lock_for_a_moment_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The build lets go of the lock where it reads and hashes the file; a thread that runs
    pure Python then keeps it until the build's thread has waited a whole switch interval.
    That is the event loop's stall: a moment, not the 5 s the span once held."""
    stop, spinning = threading.Event(), threading.Event()
    waited: list[float] = []

    def spin() -> None:
        spinning.set()
        while not stop.is_set():  # pure Python: lets go of the lock only when asked
            pass

    def let_one_in() -> None:
        at = time.perf_counter()
        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()
        spinning.wait(10)  # the lock handed over; back only when the spinner is asked
        waited.append(time.perf_counter() - at)
        stop.set()
        spinner.join(10)

    _ranks_doing(let_one_in, monkeypatch)
    O200kCounter().build_here()
    assert waited[0] < 2.0, waited
