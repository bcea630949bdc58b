"""The append path of the audit Merkle log: enqueue without waiting, commit in groups.

`emit` puts an event on an in-memory queue and returns at once: the gateway
answers a request only after its event is queued.  A writer thread takes
everything queued, canonicalises each event (RFC 8785), hashes it as a leaf
(RFC 6962 §2.1) and inserts the batch in one transaction; an event is
*acknowledged* once that transaction has committed.

Leaf indices are assigned inside the transaction under a database-wide lock
(a PostgreSQL advisory lock; SQLite's single writer), so any number of
gateway processes on one database act as a single sequencer: indices have no
gaps and no duplicates.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from bulkhead.audit.events import AuditEvent
from bulkhead.audit.hashing import leaf_hash
from bulkhead.audit.jcs import canonicalize
from bulkhead.store.db import Database
from bulkhead.store.schema import AuditEntryRow

log = logging.getLogger("bulkhead.audit")

# pg_advisory_xact_lock key: "bulkhead audit sequencer" folded into a bigint.
SEQUENCER_LOCK = 0x62756C6B61756474
_STOP = object()
GENESIS = bytes(32)  # the "previous leaf hash" of leaf 0


def encode(event: AuditEvent, idx: int, prev: bytes) -> bytes:
    """The leaf: the event plus its own index and the previous leaf's hash.

    The index makes a deleted, inserted or reordered row visible at exactly
    its position, and the link to the previous leaf does the same for a
    modified one, before the signed checkpoints are even consulted.
    """
    entry = event.as_dict()
    entry["idx"] = idx
    entry["prev"] = base64.b64encode(prev).decode()
    return canonicalize(entry)


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


def append_batch(db: Database, events: Sequence[AuditEvent]) -> int:
    """Durably append `events` in order; return the index of the first one."""
    with db.platform_transaction() as session:
        first, prev = tail(session, db.dialect)
        rows = []
        for offset, event in enumerate(events):
            body = encode(event, first + offset, prev)
            prev = leaf_hash(body)
            rows.append(
                {
                    "idx": first + offset,
                    "event_id": event.event_id,
                    "tenant_id": event.tenant_id,
                    "time": event.time,
                    "leaf_hash": prev,
                    "body": body,
                }
            )
        # The Core path: a plain executemany, without the ORM's bulk machinery.
        session.connection().execute(insert(AuditEntryRow), rows)
    return first


class AuditLog:
    """An `AuditSink` that writes the Merkle log's leaves with group commit."""

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 4096,
        on_commit: Callable[[int], None] | None = None,
        linger_s: float = 0.01,
    ):
        self.db = db
        self.max_batch = max_batch
        self.on_commit = on_commit
        self.linger_s = linger_s
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._emitted = 0
        self._acknowledged = 0
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    @property
    def acknowledged(self) -> int:
        return self._acknowledged

    def emit(self, event: AuditEvent) -> None:
        with self._lock:
            self._emitted += 1
        self._queue.put(event)

    def _take(self) -> tuple[list[AuditEvent], bool]:
        first = self._queue.get()
        batch, stop = [first], first is _STOP
        if self.linger_s and not stop:
            # Group commit: wait a moment so that a trickle of requests shares one
            # transaction (and one fsync) instead of paying for one each.
            time.sleep(self.linger_s)
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            stop = stop or item is _STOP
            batch.append(item)
        return [e for e in batch if isinstance(e, AuditEvent)], stop

    def _commit(self, events: list[AuditEvent]) -> None:
        delay = 0.05
        while True:
            try:
                append_batch(self.db, events)
                return
            except (IntegrityError, OperationalError) as exc:
                # Another writer took the same indices (SQLite) or the database is
                # briefly away: nothing was committed, so retry the whole batch.
                log.warning("audit append retry: %s", type(exc).__name__)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _run(self) -> None:
        while True:
            events, stop = self._take()
            if events:
                self._commit(events)
                with self._lock:
                    self._acknowledged += len(events)
                    self._lock.notify_all()
                if self.on_commit is not None:
                    self.on_commit(self._acknowledged)
            if stop:
                return

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every event emitted so far is acknowledged (durable)."""
        with self._lock:
            target = self._emitted
            self._lock.wait_for(lambda: self._acknowledged >= target, timeout)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def __repr__(self) -> str:
        return f"AuditLog(db={self.db!r})"
