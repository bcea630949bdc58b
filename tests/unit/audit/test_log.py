"""The audit writer: per-event isolation, its state, fail-closed signals and recovery (SQLite)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from sqlalchemy import select, text

from bulkhead.audit import WriterState
from bulkhead.audit.events import MAX_TEXT, AuditEvent, clean
from bulkhead.audit.log import RECOVERED, AuditLog
from bulkhead.store import Database
from bulkhead.store.schema import AuditEntryRow


def rows(db: Database) -> list[dict[str, object]]:
    with db.platform_transaction() as session:
        bodies = session.execute(select(AuditEntryRow.body).order_by(AuditEntryRow.idx))
        return [json.loads(b) for b in bodies.scalars()]


def rename(db: Database, old: str, new: str) -> None:
    with db.engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def event(name: str = "test") -> AuditEvent:
    return AuditEvent(action=name, outcome="success", status=200)


def test_values_without_an_exact_json_form_are_cleaned() -> None:
    assert clean("a\ud800b\udfff") == "a\ufffdb\ufffd"
    assert len(str(clean("x" * 10 * MAX_TEXT))) == MAX_TEXT
    assert clean(2**53) == 2**53 and clean(2**53 + 1) is None and clean(True) is None
    assert clean(math.nan) is None and clean(1.5) == 1.5 and clean(["list"]) is None


def test_an_event_emitted_twice_does_not_wedge_the_log(db: Database) -> None:
    log = AuditLog(db)
    twice = event("twice")
    log.emit(twice)
    log.flush()
    log.emit(twice)  # the same id again: a retry would fail on it forever
    log.emit(event("after"))
    log.flush()
    written = rows(db)
    assert [e["action"] for e in written] == ["twice", "twice", "after"]
    assert len({e["event_id"] for e in written}) == 3
    assert log.state().healthy
    log.close()


def test_failing_writes_turn_unhealthy_then_recover_on_the_record(db: Database) -> None:
    seen: list[WriterState] = []
    log = AuditLog(db, fail_after_s=0.1, on_state=seen.append)
    log.emit(event("before"))
    log.flush()
    assert log.state().healthy and log.state().last_commit is not None
    rename(db, "audit_entries", "audit_entries_away")
    log.emit(event("during"))
    wait_until(lambda: not log.state().healthy)
    state = log.state()
    assert state.backlog == 1 and state.failing_since is not None
    assert state.problem is not None and "OperationalError" in state.problem
    rename(db, "audit_entries_away", "audit_entries")
    wait_until(lambda: log.state().healthy)
    log.flush()
    assert [s.healthy for s in seen] == [False, True]
    written = rows(db)
    assert [e["action"] for e in written] == ["before", "during", RECOVERED]
    assert "could not be written" in str(written[-1]["reason"])
    log.close()


def test_a_full_backlog_refuses_and_counts_what_it_drops(db: Database) -> None:
    log = AuditLog(db, max_backlog=2, fail_after_s=60)
    rename(db, "audit_entries", "audit_entries_away")
    for i in range(10):
        log.emit(event(f"e{i}"))
    state = log.state()
    assert not state.healthy and state.backlog == 4 and state.dropped == 6
    assert state.problem == "backlog of 4 events"
    rename(db, "audit_entries_away", "audit_entries")
    wait_until(lambda: log.state().healthy)
    log.flush()
    written = rows(db)
    assert [e["action"] for e in written][:4] == ["e0", "e1", "e2", "e3"]
    assert written[-1]["action"] == RECOVERED and "6 event(s) dropped" in str(written[-1]["reason"])
    log.close()


def test_a_failing_hook_does_not_stop_the_writer(db: Database) -> None:
    def broken(_: int) -> None:
        raise RuntimeError("hook")

    log = AuditLog(db, on_commit=broken)
    for name in ("a", "b"):
        log.emit(event(name))
        log.flush()
    assert [e["action"] for e in rows(db)] == ["a", "b"] and log.state().healthy
    log.close()
