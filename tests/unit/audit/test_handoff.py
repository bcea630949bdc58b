"""The hand-offs of a durable wait: the writer's `Bell`, the per-loop `Bounds`, and how they end.

A ring is never lost and never left over; every wait ends (committed, failed
with `AuditUnavailable` when the writer fails or the log closes, or at its
`wait_s` bound), never hangs; one timer per loop keeps the bounds, and none
is left once nobody waits.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from sqlalchemy import text

from bulkhead.audit.events import AuditEvent
from bulkhead.audit.log import AuditLog
from bulkhead.audit.waiters import Bell, Bounds
from bulkhead.errors import AuditUnavailable
from bulkhead.store import Database


def event(name: str = "test") -> AuditEvent:
    return AuditEvent(action=name, outcome="success", status=200)


def sleeper(lock: threading.Lock, bell: Bell, timeout: float | None) -> threading.Thread:
    def run() -> None:
        with lock:
            bell.sleep_locked(timeout)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_ring_wakes_the_sleeper_and_nobody_asleep_is_not_rung() -> None:
    lock = threading.Lock()
    bell = Bell(lock)
    with lock:
        assert bell.ring_locked() is False  # nobody sleeps: nothing to release
    thread = sleeper(lock, bell, None)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with lock:
            if bell.asleep:
                assert bell.ring_locked() is True
                break
        time.sleep(0.001)
    thread.join(5)
    assert not thread.is_alive()


@pytest.mark.serial
def test_a_ring_after_the_time_ran_out_is_taken_back_not_left_over() -> None:
    lock = threading.Lock()
    bell = Bell(lock)
    thread = sleeper(lock, bell, 0.05)
    time.sleep(0.01)
    with lock:  # the sleeper's time runs out while it cannot take the lock back
        assert bell.asleep
        time.sleep(0.2)
        assert bell.ring_locked() is True
    thread.join(5)
    assert not thread.is_alive() and not bell.asleep
    # The ring was taken back: the next sleep waits out its time, and rings never fail.
    began = time.monotonic()
    sleeper(lock, bell, 0.1).join(5)
    assert time.monotonic() - began >= 0.09


def test_rings_from_many_threads_are_never_lost_nor_doubled() -> None:
    lock = threading.Lock()
    bell = Bell(lock)
    stop = threading.Event()
    wakes = 0

    def writer() -> None:
        nonlocal wakes
        while not stop.is_set():
            with lock:
                bell.sleep_locked(0.001 * (wakes % 3))  # timed out and rung, mixed
                wakes += 1

    def ringer() -> None:
        for _ in range(2000):
            with lock:
                bell.ring_locked()  # would raise on a second release

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    ringers = [threading.Thread(target=ringer) for _ in range(4)]
    for each in ringers:
        each.start()
    for each in ringers:
        each.join(30)
    stop.set()
    with lock:
        bell.ring_locked()
    thread.join(5)
    assert not thread.is_alive() and wakes > 0


class CountingLoop:
    """Counts the timers `Bounds` arms on a loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.armed = loop, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)

    def call_at(self, when: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        self.armed += 1
        return self.loop.call_at(when, callback, *args)


@pytest.mark.serial
def test_bounds_fail_only_the_waits_still_pending_with_one_timer_per_loop() -> None:
    bounds = Bounds(0.1)

    async def main() -> tuple[list[str], int]:
        loop = CountingLoop(asyncio.get_running_loop())
        waits = [loop.create_future() for _ in range(50)]
        for waiter in waits:
            bounds.watch(loop, waiter)  # type: ignore[arg-type]
        for waiter in waits[::2]:
            waiter.set_result(None)  # committed in time
        waits[1].cancel()  # the client went away
        await asyncio.sleep(0.3)
        ends = []
        for waiter in waits:
            if waiter.cancelled():
                ends.append("cancelled")
            elif isinstance(waiter.exception(), AuditUnavailable):
                ends.append("unavailable")
            else:
                ends.append("durable")
        return ends, loop.armed

    ends, armed = asyncio.run(main())
    assert ends[::2] == ["durable"] * 25 and ends[1] == "cancelled"
    assert ends[3::2] == ["unavailable"] * 24
    assert armed == 1  # one timer for the fifty waits
    assert not bounds._queues  # nobody waits: no queue, no timer left


def test_bounds_forget_a_loop_that_closed_with_its_timer_armed() -> None:
    bounds = Bounds(30)

    async def wait_and_leave() -> None:
        loop = asyncio.get_running_loop()
        bounds.watch(loop, loop.create_future())

    asyncio.run(wait_and_leave())
    asyncio.run(wait_and_leave())  # a new loop's first wait drops the closed one's queue
    assert len(bounds._queues) == 1


@pytest.mark.serial
def test_a_writer_that_fails_for_good_ends_every_pending_wait(db: Database) -> None:
    log = AuditLog(db, fail_after_s=0.2, wait_s=60, linger_s=0)
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_entries RENAME TO audit_entries_away"))

    async def main() -> tuple[list[BaseException | None], float]:
        began = time.perf_counter()
        waits = [log.durable(log.emit(event())) for _ in range(20)]
        ends = await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 10)
        return list(ends), time.perf_counter() - began

    ends, elapsed = asyncio.run(main())
    assert all(isinstance(end, AuditUnavailable) for end in ends)
    assert elapsed < 5  # the failure ends them, not `wait_s`
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_entries_away RENAME TO audit_entries"))
    log.flush(10)
    log.close()


@pytest.mark.serial
def test_closing_with_waiters_pending_ends_their_waits(db: Database) -> None:
    log = AuditLog(db, fail_after_s=60, wait_s=60)
    # The writer's commit waits on another connection's lock: the waits stay pending.
    holder = db.engine.raw_connection()
    holder.execute("BEGIN EXCLUSIVE")  # type: ignore[attr-defined]

    async def main() -> list[BaseException | None]:
        waits = [asyncio.ensure_future(log.durable(log.emit(event()))) for _ in range(10)]
        await asyncio.sleep(0.1)
        assert not any(wait.done() for wait in waits)
        closing = threading.Thread(target=log.close)
        closing.start()
        await asyncio.sleep(0.2)
        holder.rollback()  # the writer commits what it holds, then stops
        ends = await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 20)
        closing.join(30)
        return list(ends)

    try:
        ends = asyncio.run(main())
    finally:
        holder.close()
    # Each wait ends: durable if its event made the last commit, else refused, never hung.
    assert all(end is None or isinstance(end, AuditUnavailable) for end in ends)
    assert not log._waiters
