"""The append path of the audit Merkle log: enqueue without waiting, commit in groups.

`emit` puts an event on an in-memory queue and returns at once with a
ticket, the event's position; `durable(ticket)` is awaited until that event
has committed (`audit.waiters`).  The gateway answers a call only once its
event is durable, and forwards a model call only once an entry saying so is.
A writer thread takes everything queued, canonicalises each event (RFC 8785),
hashes it as a leaf (RFC 6962 §2.1) and inserts the batch in one transaction;
an event is *acknowledged* once that transaction has committed.  The group
commit is natural: an idle writer commits the first event at once, and
whatever arrives during a commit (up to `max_batch`) shares the next one, so
a lone call waits for one commit and a busy gateway pays one per batch.

Leaf indices are assigned inside the transaction under a database-wide lock
(a PostgreSQL advisory lock; SQLite's single writer), so any number of
gateway processes on one database act as a single sequencer: indices have no
gaps and no duplicates.

The log never dies silently.  Each event is encoded on its own: one that
cannot be is replaced by a substitute entry saying so, never dropped.  The
writer thread catches every failure, retries the batch with back-off, and
reports its state (`WriterState`): once events have failed to commit for
`fail_after_s`, or the backlog stalls or overflows, the state turns unhealthy,
the gateway refuses requests, and `on_state` raises the alert.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bulkhead.audit import WriterState
from bulkhead.audit.events import AuditEvent, clean_members
from bulkhead.audit.hashing import leaf_hash
from bulkhead.audit.health import RECOVERED as RECOVERED  # re-exported
from bulkhead.audit.health import Health, outage_event
from bulkhead.audit.jcs import canonicalize
from bulkhead.audit.waiters import Waiters, expire, settle, unavailable
from bulkhead.store.db import Database
from bulkhead.store.schema import AuditEntryRow

log = logging.getLogger("bulkhead.audit")

# pg_advisory_xact_lock key: "bulkhead audit sequencer" folded into a bigint.
SEQUENCER_LOCK = 0x62756C6B61756474
_STOP = object()
DROPPED = -1
"""The ticket of an event dropped because the backlog was full: it never becomes durable."""
GENESIS = bytes(32)  # the "previous leaf hash" of leaf 0
UNENCODABLE = "audit:event.unencodable"
_EVENT_ID = re.compile("[0-9a-f]{32}")
_ID_WIDTH = 32  # the width of the tenant id columns of `audit_entries`
_TENANT_ID = re.compile(f"[A-Za-z0-9_.-]{{1,{_ID_WIDTH}}}")
_ID_CHUNK = 500  # event ids looked up per query when checking for reuse
MAX_PLAIN_BYTES = 8 * 1024
"""Entries up to this long are written as encoded; longer ones have their text cut."""

StateHook = Callable[[WriterState], None]
BatchHook = Callable[[Session, Sequence[AuditEvent]], None]
"""Called with each batch inside its transaction (the app adds usage there, `store.usage`)."""


def encode(event: AuditEvent, idx: int, prev: bytes) -> bytes:
    """The leaf: the event plus its own index and the previous leaf's hash.

    The index makes a deleted, inserted or reordered row visible at exactly
    its position, and the link to the previous leaf does the same for a
    modified one, before the signed checkpoints are even consulted.
    """
    return _encode(_entry(event, None), idx, prev)[1]


def _encode(entry: dict[str, Any], idx: int, prev: bytes) -> tuple[dict[str, Any], bytes]:
    """The entry as it is written, and its canonical bytes (RFC 8785).

    The members are encoded as they are; only when that fails (a lone
    surrogate, NaN, an inexact integer, another type) or the entry comes out
    longer than `MAX_PLAIN_BYTES` are they cleaned (`events.clean`) and encoded
    again, so the common case costs one length check.
    """
    entry["idx"] = idx
    entry["prev"] = base64.b64encode(prev).decode()
    try:
        body = canonicalize(entry)
        if len(body) <= MAX_PLAIN_BYTES:
            return entry, body
    except (ValueError, TypeError):
        pass
    cleaned = clean_members(entry)
    return cleaned, canonicalize(cleaned)


def _entry(event: AuditEvent, taken: set[str] | None) -> dict[str, Any]:
    """The event's members, with an event id of its own and a time."""
    entry = event.members()
    event_id = entry.get("event_id")
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        log.warning("audit event with a malformed id: given a fresh one")
        event_id = None
    elif taken is not None and event_id in taken:
        log.warning("audit event id %s used twice: the second gets a fresh one", event_id)
        event_id = None
    entry["event_id"] = event_id or os.urandom(16).hex()
    entry.setdefault("time", time.time())
    if taken is not None:
        taken.add(entry["event_id"])
    return entry


def substitute(event: AuditEvent, exc: Exception) -> AuditEvent:
    """The entry that stands in for an event that could not be encoded: who, when, and why."""
    stamp = event.time
    valid_time = isinstance(stamp, int | float) and math.isfinite(stamp)
    return AuditEvent(
        action=UNENCODABLE,
        outcome="failure",
        status=0,
        request_id=_plain(event.request_id),
        tenant_id=_plain(event.tenant_id),
        principal_id=_plain(event.principal_id),
        credential_id=_plain(event.credential_id),
        target_tenant=_plain(event.target_tenant),
        resource=_plain(event.action),
        reason=f"{type(exc).__name__}: the event could not be encoded; this entry stands in for it",
        time=float(stamp) if valid_time else time.time(),
        event_id=event.event_id if _plain(event.event_id) else os.urandom(16).hex(),
    )


def _plain(value: object) -> str | None:
    """`value` if it is short printable ASCII, the only text a substitute repeats."""
    ok = isinstance(value, str) and value.isascii() and value.isprintable() and len(value) <= 128
    return value if ok and isinstance(value, str) else None


def leaf_row(event: AuditEvent, idx: int, prev: bytes, taken: set[str] | None) -> dict[str, Any]:
    """One row of `audit_entries`; an event that cannot be encoded is replaced, never lost."""
    try:
        entry, body = _encode(_entry(event, taken), idx, prev)
    except Exception as exc:  # Per-event isolation: one bad event must not stop the log.
        log.error(
            "audit event could not be encoded (%s): a substitute records it", type(exc).__name__
        )
        entry, body = _encode(_entry(substitute(event, exc), taken), idx, prev)
    return {
        "idx": idx,
        "event_id": entry["event_id"],
        "tenant_id": _id_column(entry.get("tenant_id")),
        "target_tenant_id": _id_column(entry.get("target_tenant")),
        "time": _time(entry.get("time")),
        "leaf_hash": leaf_hash(body),
        "body": body,
    }


def _time(value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok and isinstance(value, int | float) else time.time()


def _id_column(value: object) -> str | None:
    # A tenant id the column cannot hold (too long, or text that is no id, which one
    # backend or another would refuse and so stop the writer) is no tenant's: the
    # entry stays platform-only.
    ok = isinstance(value, str) and _TENANT_ID.fullmatch(value) is not None
    return value if ok and isinstance(value, str) else None


def tail(session: Session, dialect: str) -> tuple[int, bytes]:
    """Lock the log for appending; return the next index and the last leaf hash."""
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEQUENCER_LOCK})
    last = session.execute(
        select(AuditEntryRow.idx, AuditEntryRow.leaf_hash)
        .order_by(AuditEntryRow.idx.desc())
        .limit(1)
    ).first()
    return (0, GENESIS) if last is None else (int(last[0]) + 1, bytes(last[1]))


def _taken_ids(session: Session, events: Sequence[AuditEvent]) -> set[str]:
    """The batch's event ids that some committed entry already uses."""
    ids = [e.event_id for e in events if isinstance(e.event_id, str)]
    taken: set[str] = set()
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        found = session.execute(
            select(AuditEntryRow.event_id).where(AuditEntryRow.event_id.in_(chunk))
        )
        taken.update(found.scalars())
    return taken


def append_batch(
    db: Database,
    events: Sequence[AuditEvent],
    *,
    fresh_ids: bool = False,
    on_batch: BatchHook | None = None,
) -> int:
    """Durably append `events` in order; return the index of the first one.

    With `fresh_ids`, an event whose id is already in the log (or earlier in
    the batch) is written under a fresh id instead of failing the batch.
    `on_batch` runs in the same transaction, after the leaves are inserted.
    """
    with db.platform_transaction() as session:
        first, prev = tail(session, db.dialect)
        taken = _taken_ids(session, events) if fresh_ids else None
        rows = []
        for offset, event in enumerate(events):
            row = leaf_row(event, first + offset, prev, taken)
            prev = row["leaf_hash"]
            rows.append(row)
        # The Core path: a plain executemany, without the ORM's bulk machinery.
        session.connection().execute(insert(AuditEntryRow), rows)
        if on_batch is not None:
            _run_hook(session, on_batch, events)
    return first


def _run_hook(session: Session, hook: BatchHook, events: Sequence[AuditEvent]) -> None:
    """Run `hook` under a savepoint: whatever it does wrong, the events are still committed."""
    try:
        with session.begin_nested():
            hook(session, events)
    except Exception as exc:  # The log never stops for what others keep beside it.
        name = type(exc).__name__
        log.error("audit batch hook failed (%s): the batch is written without it", name)


class AuditLog:
    """An `AuditSink` that writes the Merkle log's leaves with group commit."""

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 4096,
        on_commit: Callable[[int], None] | None = None,
        on_state: StateHook | None = None,
        on_batch: BatchHook | None = None,
        fail_after_s: float = 1.0,
        stall_after_s: float = 30.0,
        max_backlog: int = 50_000,
        wait_s: float = 5.0,
        linger_s: float = 0.01,
        now: Callable[[], float] = time.time,
    ):
        self.db = db
        # Events nobody waits for (a forwarded call's closing entry, a background job's)
        # wait up to `linger_s` for company, so a trickle shares one commit; a waiter
        # (`durable`, `flush`) ends the linger at once.
        self.linger_s = linger_s
        self._urgent = threading.Event()
        self.max_batch = max_batch
        self.on_commit = on_commit
        self.on_state = on_state
        self.on_batch = on_batch
        self.fail_after_s, self.stall_after_s = fail_after_s, stall_after_s
        # The longest a call waits for its event to be durable before it is refused (503);
        # a writer failing for `fail_after_s` ends every wait sooner.
        self.wait_s = wait_s
        # Unhealthy (requests refused) at `max_backlog`; events beyond twice that are
        # counted as dropped, and the count is written once the log recovers.
        self.max_backlog = max_backlog
        self._now = now
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._emitted = 0
        self._acknowledged = 0
        self._health = Health()
        self._waiters = Waiters()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    @property
    def acknowledged(self) -> int:
        return self._acknowledged

    def emit(self, event: AuditEvent) -> int:
        """Queue `event`; return its ticket for `durable` (`DROPPED` if the backlog is full)."""
        with self._lock:
            if self._emitted - self._acknowledged >= 2 * self.max_backlog:
                first = self._health.drop(1)
            else:
                return self._enqueue_locked(event)
        if first:
            log.critical("audit backlog full: events are being dropped (and counted)")
        return DROPPED

    def _enqueue_locked(self, event: AuditEvent) -> int:
        if self._emitted == self._acknowledged:
            self._health.waiting_since = self._now()
        self._emitted += 1
        self._queue.put(event)
        return self._emitted

    async def durable(self, ticket: int) -> None:
        """Return once the event of `ticket` has committed; never blocks the event loop.

        Raises `AuditUnavailable` (a 503) for a dropped event, while the writer
        has been failing for `fail_after_s` or has stopped, or after `wait_s`.
        """
        if 0 <= ticket <= self._acknowledged:  # already durable: no lock, no future
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if ticket <= self._acknowledged and ticket != DROPPED:
                return
            problem = self._refusal_locked(ticket)
            if problem is not None:
                raise unavailable(problem)
            self._waiters.add(ticket, waiter)
        self._urgent.set()  # someone waits: the writer commits what it has, now
        timer = loop.call_later(self.wait_s, expire, waiter, f"no commit within {self.wait_s} s")
        try:
            await waiter
        finally:
            timer.cancel()

    def _refusal_locked(self, ticket: int) -> str | None:
        """Why a wait for `ticket` would be in vain now, if it would."""
        if ticket == DROPPED:
            return "the backlog was full"
        return self._failure_locked()

    def _failure_locked(self) -> str | None:
        """Why no event can be expected to commit soon, if none can."""
        if self._closing and not self._thread.is_alive():
            return "the log is closed"
        failing = self._health.failing_since
        if failing is not None and self._now() - failing >= self.fail_after_s:
            return f"writes fail ({self._health.error})"
        return None

    def _take(self) -> tuple[list[AuditEvent], bool]:
        # Group commit: an event someone waits for goes at once, with whatever queued up
        # while the last transaction committed, so a burst shares one fsync; events nobody
        # waits for linger up to `linger_s`, then ride with the next.
        first = self._queue.get()
        batch, stop = [first], first is _STOP
        if not stop and self.linger_s and not self._urgent.is_set():
            self._urgent.wait(self.linger_s)  # nobody waits yet: let company arrive
        # Cleared before the queue is drained: a waiter from now on finds its event in
        # this batch (it was emitted before it waited) or wakes the next one.
        self._urgent.clear()
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            stop = stop or item is _STOP
            batch.append(item)
        return [e for e in batch if isinstance(e, AuditEvent)], stop

    def _commit(self, events: list[AuditEvent]) -> None:
        """Commit the batch, retrying with back-off until it is in: it never gives up."""
        delay, fresh_ids = 0.05, False
        while True:
            try:
                append_batch(self.db, events, fresh_ids=fresh_ids, on_batch=self.on_batch)
            except Exception as exc:
                # Nothing was committed, so the whole batch is tried again.  An
                # IntegrityError is another writer that took the same indices
                # (SQLite), or an event id already in the log: the retry gives
                # such events fresh ids.
                fresh_ids = fresh_ids or isinstance(exc, IntegrityError)
                self._failed(exc)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                self._committed(len(events))
                return

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self._health.failed(type(exc).__name__, self._now())
            # Once the failure has lasted `fail_after_s`, nobody waits for it to end.
            doomed = self._waiters.take_all() if self._failure_locked() else []
        if doomed:
            settle(doomed, lambda: unavailable(f"writes fail ({type(exc).__name__})"))
        log.warning("audit append failed (%s); retrying", type(exc).__name__)
        self.state()  # notices (and reports) when the failure has lasted too long

    def _committed(self, count: int) -> None:
        now = self._now()
        with self._lock:
            self._acknowledged += count
            outage, dropped = self._health.committed(now, self._acknowledged < self._emitted)
            if outage is not None or dropped:
                # The log itself records that it could not be written, and what was lost.
                self._enqueue_locked(outage_event(outage, now, dropped))
            durable = self._waiters.ready(self._acknowledged)
            self._lock.notify_all()
        settle(durable)
        self.state()
        if self.on_commit is not None:
            try:
                self.on_commit(self._acknowledged)
            except Exception as exc:
                log.error("audit on_commit hook failed: %s", type(exc).__name__)

    def _run(self) -> None:
        while True:
            events: list[AuditEvent] = []
            try:
                events, stop = self._take()
                if events:
                    self._commit(events)
                if stop:
                    return
            except Exception as exc:  # _commit never raises; the thread must not die anyway.
                log.critical("audit writer error (%s)", type(exc).__name__)
                time.sleep(0.5)

    def state(self) -> WriterState:
        """The writer's state now; reports a change between healthy and not (log, `on_state`)."""
        now = self._now()
        with self._lock:
            backlog = self._emitted - self._acknowledged
            alive = self._thread.is_alive() or self._closing
            current = self._health.state(now, backlog, alive, self)
            changed = self._health.observe(current.healthy)
        if changed:
            self._report(current)
        return current

    def _report(self, state: WriterState) -> None:
        if state.healthy:
            log.warning("audit writer recovered: events are written again")
        else:
            log.critical(
                "audit events cannot be written (%s): requests are refused until they can",
                state.problem,
            )
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception as exc:
                log.error("audit state hook failed: %s", type(exc).__name__)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every event emitted so far is acknowledged (durable)."""
        self._urgent.set()
        with self._lock:
            target = self._emitted
            self._lock.wait_for(lambda: self._acknowledged >= target, timeout)

    def close(self) -> None:
        self._closing = True
        self._urgent.set()
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        with self._lock:  # what is still waiting now never will be written by this process
            left = self._waiters.take_all()
        settle(left, lambda: unavailable("the log is closed"))

    def __repr__(self) -> str:
        return f"AuditLog(db={self.db!r})"
