"""Waiting for durability (`AuditLog.emit`'s ticket, `AuditLog.durable`) on SQLite.

A wait ends once the event has committed, in commit order, for any number of
waiters; a dropped event, a failing writer or a commit that does not come ends
it with `AuditUnavailable` within a bound, never by blocking the event loop.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text

from bulkhead.audit.events import AuditEvent
from bulkhead.audit.log import DROPPED, AuditLog
from bulkhead.audit.waiters import Waiters
from bulkhead.errors import AuditUnavailable
from bulkhead.store import Database


def event(name: str = "test") -> AuditEvent:
    return AuditEvent(action=name, outcome="success", status=200)


def rename(db: Database, old: str, new: str) -> None:
    with db.engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def test_tickets_are_positions_in_commit_order(db: Database) -> None:
    log = AuditLog(db)
    tickets = [log.emit(event(str(n))) for n in range(5)]
    assert tickets == [1, 2, 3, 4, 5]

    async def wait_all() -> None:
        await asyncio.gather(*(log.durable(t) for t in reversed(tickets)))

    asyncio.run(wait_all())
    assert log.acknowledged >= 5
    log.close()


def test_a_wait_ends_only_once_its_event_has_committed(db: Database) -> None:
    log = AuditLog(db)
    seen: list[int] = []

    async def main() -> None:
        async def wait(ticket: int) -> None:
            await log.durable(ticket)
            # Durable means committed: the acknowledged count has reached the ticket.
            assert log.acknowledged >= ticket
            seen.append(ticket)

        tickets = [log.emit(event()) for _ in range(200)]
        await asyncio.gather(*(wait(t) for t in tickets))

    asyncio.run(main())
    assert sorted(seen) == list(range(1, 201))
    log.close()


def test_many_waiters_on_several_loops_are_all_settled(db: Database) -> None:
    log = AuditLog(db)

    async def burst(n: int) -> float:
        started = time.perf_counter()
        await asyncio.gather(*(log.durable(log.emit(event())) for _ in range(n)))
        return time.perf_counter() - started

    import threading

    results: list[float] = []
    threads = [
        threading.Thread(target=lambda: results.append(asyncio.run(burst(2000)))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 3 and log.acknowledged == 6000
    log.close()


@pytest.mark.serial
def test_a_failing_writer_ends_the_wait_with_audit_unavailable_within_a_bound(
    db: Database,
) -> None:
    log = AuditLog(db, fail_after_s=0.3, wait_s=30)
    rename(db, "audit_entries", "audit_entries_away")

    async def main() -> float:
        started = time.perf_counter()
        with pytest.raises(AuditUnavailable):
            await log.durable(log.emit(event("during")))
        # Once the writer is known to fail, a new wait is refused at once.
        with pytest.raises(AuditUnavailable):
            await asyncio.wait_for(log.durable(log.emit(event("later"))), 0.5)
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    assert elapsed < 0.3 + 2.5  # fail_after_s plus at most one back-off step
    rename(db, "audit_entries_away", "audit_entries")
    log.flush(10)
    assert log.state().healthy
    # Recovered: the events written late are durable, and new waits end normally.
    asyncio.run(log.durable(log.emit(event("after"))))
    log.close()


def test_a_commit_that_does_not_come_ends_the_wait_after_wait_s(db: Database) -> None:
    log = AuditLog(db, wait_s=0.2, fail_after_s=60)
    # An exclusive lock held by another connection: the writer's commit waits on it.
    holder = db.engine.raw_connection()
    holder.execute("BEGIN EXCLUSIVE")  # type: ignore[attr-defined]
    try:

        async def main() -> float:
            started = time.perf_counter()
            with pytest.raises(AuditUnavailable):
                await log.durable(log.emit(event()))
            return time.perf_counter() - started

        assert 0.15 < asyncio.run(main()) < 2.0
    finally:
        holder.rollback()
        holder.close()
    log.flush(10)
    log.close()


def test_a_dropped_event_is_never_waited_for(db: Database) -> None:
    log = AuditLog(db, max_backlog=1, fail_after_s=60)
    rename(db, "audit_entries", "audit_entries_away")
    tickets = [log.emit(event()) for _ in range(5)]
    assert DROPPED in tickets

    with pytest.raises(AuditUnavailable):
        asyncio.run(log.durable(DROPPED))
    rename(db, "audit_entries_away", "audit_entries")
    log.flush(10)
    log.close()


def test_waits_left_at_close_end_with_audit_unavailable(db: Database) -> None:
    log = AuditLog(db)
    log.close()
    with pytest.raises(AuditUnavailable):
        asyncio.run(log.durable(log.emit(event())))


def test_the_waiters_heap_pops_in_ticket_order() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        waiters = Waiters()
        futures = {t: loop.create_future() for t in (5, 1, 3, 3, 9)}
        for ticket, future in futures.items():
            waiters.add(ticket, future)
        assert waiters.ready(0) == []
        assert waiters.ready(3) == [futures[1], futures[3]]
        assert len(waiters) == 2 and waiters.take_all() == [futures[5], futures[9]]

    asyncio.run(main())
