"""Events nobody waits for linger for company; a waiter ends the linger at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bulkhead.audit import AuditEvent
from bulkhead.audit.log import AuditLog
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
