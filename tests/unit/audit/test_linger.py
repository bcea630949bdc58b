"""Events nobody waits for linger for company; a waiter ends the linger at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bulkhead.audit import AuditEvent
from bulkhead.audit.log import AuditLog
from bulkhead.audit.waiters import Bell
from bulkhead.store import Database, upgrade


def log_at(tmp_path: Path, linger_s: float, commits: list[int]) -> AuditLog:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(db)
    return AuditLog(db, linger_s=linger_s, on_commit=commits.append)


def test_unwaited_events_share_one_commit(tmp_path: Path) -> None:
    commits: list[int] = []
    audit = log_at(tmp_path, 0.2, commits)
    for n in range(5):
        audit.emit(AuditEvent(action="test:linger", outcome="success", status=200, resource=str(n)))
        time.sleep(0.01)
    audit.flush()
    assert commits == [5]  # one transaction for the trickle
    audit.close()


@pytest.mark.serial
def test_a_waiter_ends_the_linger(tmp_path: Path) -> None:
    commits: list[int] = []
    audit = log_at(tmp_path, 5.0, commits)  # a linger far longer than the bound below

    async def main() -> float:
        began = time.perf_counter()
        await audit.durable(
            audit.emit(AuditEvent(action="test:linger", outcome="success", status=200))
        )
        return time.perf_counter() - began

    assert asyncio.run(main()) < 1.0 and commits == [1]
    audit.close()


class CountingBell:
    """The writer's bell, counting the wake-ups others give it."""

    def __init__(self, inner: Bell) -> None:
        self.inner, self.notified = inner, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def ring_locked(self) -> bool:
        rang = self.inner.ring_locked()
        self.notified += rang
        return rang


def test_a_closing_entry_rides_with_the_next_waited_one_for_one_wake(tmp_path: Path) -> None:
    # c=1: a call's closing entry (nobody waits), then the next call's forwarding entry
    # (waited for): one commit for both, and the writer is woken once, not per event.
    commits: list[int] = []
    audit = log_at(tmp_path, 5.0, commits)
    audit.flush()  # the writer is asleep, nothing queued
    time.sleep(0.05)
    counting = CountingBell(audit._bell)
    audit._bell = counting  # type: ignore[assignment]

    async def main() -> None:
        audit.emit(AuditEvent(action="test:closing", outcome="success", status=200))
        await asyncio.sleep(0.05)  # the writer was not woken: nothing committed yet
        assert audit.acknowledged == 0
        ticket = audit.emit(AuditEvent(action="test:forwarding", outcome="started", status=0))
        await audit.durable(ticket)

    asyncio.run(main())
    assert commits == [2] and counting.notified == 1
    audit.close()


@pytest.mark.serial
def test_an_unwaited_entry_on_a_loop_commits_once_its_linger_ends(tmp_path: Path) -> None:
    # Nobody waits and nothing follows: the loop's timer ends the linger (no wake-up lost),
    # again on a second loop after the first one closed with its timer still armed.
    commits: list[int] = []
    audit = log_at(tmp_path, 0.05, commits)

    async def emit_only() -> None:
        audit.emit(AuditEvent(action="test:closing", outcome="success", status=200))

    async def emit_and_idle() -> None:
        await emit_only()
        await asyncio.sleep(1.0)

    asyncio.run(emit_only())  # its loop closes before the timer fires
    asyncio.run(emit_and_idle())
    assert audit.acknowledged == 2
    audit.close()


@pytest.mark.serial
def test_a_waiter_beyond_max_batch_does_not_wait_for_the_linger(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(db)
    audit = AuditLog(db, linger_s=5.0, max_batch=2)

    async def main() -> float:
        began = time.perf_counter()
        tickets = [
            audit.emit(AuditEvent(action="test:batch", outcome="success", status=200))
            for _ in range(3)
        ]
        await audit.durable(tickets[-1])
        return time.perf_counter() - began

    assert asyncio.run(main()) < 1.0
    audit.close()


def test_waits_reached_in_one_loop_turn_share_one_commit(tmp_path: Path) -> None:
    # c=16: calls that reach their wait in the same turn of the loop are committed together:
    # the sleeping writer is rung once, at the loop's next turn, not by the first of them.
    commits: list[int] = []
    audit = log_at(tmp_path, 5.0, commits)
    audit.flush()
    time.sleep(0.05)
    counting = CountingBell(audit._bell)
    audit._bell = counting  # type: ignore[assignment]

    async def call() -> None:
        await audit.durable(audit.emit(AuditEvent(action="test:turn", outcome="started", status=0)))

    async def main() -> None:
        await asyncio.gather(*(call() for _ in range(12)))

    asyncio.run(main())
    assert commits == [12] and counting.notified == 1
    audit.close()


def test_a_loop_closed_before_its_turn_is_forgotten(tmp_path: Path) -> None:
    commits: list[int] = []
    audit = log_at(tmp_path, 5.0, commits)
    audit.flush()
    time.sleep(0.05)
    gone = asyncio.new_event_loop()
    with audit._lock:
        audit._call_locked(gone)  # a wait on `gone`, which closes before its next turn
    gone.close()

    async def main() -> None:
        await audit.durable(audit.emit(AuditEvent(action="test:turn", outcome="started", status=0)))

    asyncio.run(main())
    assert gone not in audit._calling and audit.acknowledged == 1
    audit.close()
