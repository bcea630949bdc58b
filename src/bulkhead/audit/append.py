"""Appending a batch of events to the audit Merkle log: the leaves, and the transaction.

Each event becomes a leaf: its members canonicalised with RFC 8785, with its
own index and the previous leaf's hash, hashed as an RFC 6962 leaf.  A batch
is appended in one transaction under a database-wide lock (a PostgreSQL
advisory lock; on SQLite the write lock `BEGIN IMMEDIATE` takes), so any
number of gateway processes on one database act as a single sequencer:
indices have no gaps and no duplicates.  The tail (next index, last leaf hash)
is read under that lock in every transaction, since another process may have
appended since.

An `Appender` holds one connection (`store.direct`) for all its batches and
runs the same few statements on it, compiled once: the writer thread spends
its time on the commit, not on building it.  Its `on_batch` hook (the app
adds usage there, `store.usage`) runs in the batch's transaction, so what it
writes commits with the events or not at all.  Whatever the hook does wrong,
the events are still committed: a hook that fails has the transaction rolled
back and the batch written again at once with the hook under a savepoint (so
a second failure undoes only the hook's work).  The savepoint is paid for only
then, not on every batch.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select

from bulkhead.audit.events import AuditEvent, clean_members, new_event_id
from bulkhead.audit.hashing import leaf_hash
from bulkhead.audit.jcs import canonicalize
from bulkhead.store.db import Database
from bulkhead.store.direct import DirectConnection
from bulkhead.store.schema import AuditEntryRow

log = logging.getLogger("bulkhead.audit")

# pg_advisory_xact_lock key: "bulkhead audit sequencer" folded into a bigint.
SEQUENCER_LOCK = 0x62756C6B61756474
GENESIS = bytes(32)  # the "previous leaf hash" of leaf 0
UNENCODABLE = "audit:event.unencodable"
_EVENT_ID = re.compile("[0-9a-f]{32}")
_ID_WIDTH = 32  # the width of the tenant id columns of `audit_entries`
_TENANT_ID = re.compile(f"[A-Za-z0-9_.-]{{1,{_ID_WIDTH}}}")
_ID_CHUNK = 500  # event ids looked up per query when checking for reuse
MAX_PLAIN_BYTES = 8 * 1024
"""Entries up to this long are written as encoded; longer ones have their text cut."""

BatchHook = Callable[[DirectConnection, Sequence[AuditEvent]], None]
"""Called with each batch inside its transaction (the app adds usage there, `store.usage`).

It may be called twice for one batch (once more under a savepoint, after it
failed); only one call's changes are committed."""

# Read under the lock in every transaction: another process may have appended since.
_TAIL = "SELECT idx, leaf_hash FROM audit_entries ORDER BY idx DESC LIMIT 1"
_INSERT = insert(AuditEntryRow)


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
    entry["event_id"] = event_id or new_event_id()
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
        event_id=event.event_id if _plain(event.event_id) else new_event_id(),
    )


def _plain(value: object) -> str | None:
    """`value` if it is short printable ASCII, the only text a substitute repeats."""
    ok = isinstance(value, str) and value.isascii() and value.isprintable() and len(value) <= 128
    return value if ok and isinstance(value, str) else None


def leaf_row(event: AuditEvent, idx: int, prev: bytes, taken: set[str] | None) -> dict[str, Any]:
    """One row of `audit_entries`; an event that cannot be encoded is replaced, never lost.

    Every text value is checked (the event id's pattern, `_id_column`): the
    row is written without the engine's own check for U+0000.
    """
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


class _HookFailed(Exception):
    """The batch hook raised: the transaction is rolled back and the batch written again."""


class Appender:
    """Appends batches of events to the log over one connection it keeps (one thread at a time)."""

    def __init__(self, db: Database, *, on_batch: BatchHook | None = None):
        self.conn = DirectConnection(db)
        self.on_batch = on_batch
        self._lock = SEQUENCER_LOCK if db.dialect == "postgresql" else None
        self._insert_sql = self.conn.sql(_INSERT)

    def append(self, events: Sequence[AuditEvent], *, fresh_ids: bool = False) -> int:
        """Durably append `events` in order; return the index of the first one.

        With `fresh_ids`, an event whose id is already in the log (or earlier in
        the batch) is written under a fresh id instead of failing the batch.
        Raises whatever the database raised; nothing of the batch is then
        committed, and the next call starts on a fresh connection.
        """
        try:
            return self._transaction(events, fresh_ids, guarded=False)
        except _HookFailed as failed:
            name = type(failed.__cause__).__name__
            log.warning("audit batch hook failed (%s): the batch is written again", name)
            return self._transaction(events, fresh_ids, guarded=True)

    def _transaction(self, events: Sequence[AuditEvent], fresh_ids: bool, guarded: bool) -> int:
        conn = self.conn
        try:
            conn.begin(self._lock)
            last = conn.execute(_TAIL).fetchone()
            first, prev = (0, GENESIS) if last is None else (int(last[0]) + 1, bytes(last[1]))
            taken = self._taken_ids(events) if fresh_ids else None
            rows = []
            for offset, event in enumerate(events):
                row = leaf_row(event, first + offset, prev, taken)
                prev = row["leaf_hash"]
                rows.append(row)
            conn.executemany(self._insert_sql, rows)
            if self.on_batch is not None:
                self._run_hook(self.on_batch, events, guarded)
            conn.commit()
        except _HookFailed:
            conn.rollback()
            raise
        except BaseException:
            conn.discard()
            raise
        return first

    def _run_hook(self, hook: BatchHook, events: Sequence[AuditEvent], guarded: bool) -> None:
        if not guarded:
            try:
                hook(self.conn, events)
            except Exception as exc:
                raise _HookFailed from exc
            return
        try:
            with self.conn.savepoint():
                hook(self.conn, events)
        except Exception as exc:  # The log never stops for what others keep beside it.
            name = type(exc).__name__
            log.error("audit batch hook failed (%s): the batch is written without it", name)

    def _taken_ids(self, events: Sequence[AuditEvent]) -> set[str]:
        """The batch's event ids that some committed entry already uses."""
        # Only a well-formed id can be kept (`_entry` gives any other a fresh one).
        ids = [e.event_id for e in events if isinstance(e.event_id, str)]
        ids = [i for i in ids if _EVENT_ID.fullmatch(i)]
        taken: set[str] = set()
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = {f"id{n}": value for n, value in enumerate(ids[start : start + _ID_CHUNK])}
            statement = select(AuditEntryRow.event_id).where(
                AuditEntryRow.event_id.in_([bindparam(name) for name in chunk])
            )
            found = self.conn.execute(self.conn.sql(statement), chunk).fetchall()
            taken.update(str(row[0]) for row in found)
        return taken

    def close(self) -> None:
        self.conn.close()

    def __repr__(self) -> str:
        return f"Appender({self.conn!r})"


def append_batch(
    db: Database,
    events: Sequence[AuditEvent],
    *,
    fresh_ids: bool = False,
    on_batch: BatchHook | None = None,
) -> int:
    """Durably append `events` in order, on a connection of their own; return the first index.

    For the few who append outside a running `AuditLog` (`init`, tools, tests).
    """
    appender = Appender(db, on_batch=on_batch)
    try:
        return appender.append(events, fresh_ids=fresh_ids)
    finally:
        appender.close()
