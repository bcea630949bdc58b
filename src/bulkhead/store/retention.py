"""Retained prompts and responses, for tenants whose setting is `encrypted`.

The default (`none`) stores nothing.  With `encrypted`, each exchange is one
envelope-encrypted blob (kind "exchange", sealed to tenant, kind and id)
plus a metadata row with its expiry; `purge` deletes what has expired.
Capture happens off the event loop: `submit` only queues, and a writer
thread encrypts and stores.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import delete, select

from bulkhead.crypto import decrypt, encrypt
from bulkhead.domain import Retention, Tenant
from bulkhead.errors import NotFound, Unavailable
from bulkhead.store.db import Database
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.schema import RetainedExchangeRow, utcnow

log = logging.getLogger("bulkhead.retention")

KIND = "exchange"
MAX_CAPTURE = 1 << 20  # bytes kept of each side; the rest is marked truncated
# Captured bytes waiting for the writer, per tenant and in all.  A tenant that asked
# for every exchange to be kept gets 503 rather than a call that is not kept, and a
# fast tenant cannot fill the gateway's memory with its backlog.
MAX_TENANT_BACKLOG = 64 << 20
MAX_BACKLOG = 256 << 20


@dataclass(frozen=True, slots=True)
class Captured:
    tenant: Tenant
    request_id: str
    model: str
    request: bytes
    response: bytes
    truncated: bool


@dataclass(frozen=True, slots=True)
class RetainedInfo:
    id: str
    request_id: str
    model: str
    bytes: int
    created_at: datetime
    expires_at: datetime

    def json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "model": self.model,
            "bytes": self.bytes,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def _info(row: RetainedExchangeRow) -> RetainedInfo:
    return RetainedInfo(
        row.id, row.request_id, row.model, row.bytes, row.created_at, row.expires_at
    )


class RetentionStore:
    def __init__(self, db: Database, keyring: TenantKeyring):
        self.db, self.keyring = db, keyring
        self._queue: queue.SimpleQueue[Captured | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Bytes queued per tenant id, under a lock of their own: `close` holds `_lock`
        # while it waits for the writer, which counts what it has done.
        self._pending: dict[str, int] = {}
        self._total = 0
        self._counts = threading.Lock()

    @staticmethod
    def wanted(tenant: Tenant | None) -> bool:
        return tenant is not None and tenant.config.retention is Retention.ENCRYPTED

    def admit(self, tenant: Tenant) -> None:
        """Refuse a call that could not be kept: the writer is too far behind (503)."""
        if self._pending.get(tenant.id, 0) >= MAX_TENANT_BACKLOG or self._total >= MAX_BACKLOG:
            raise Unavailable("Exchanges cannot be kept as fast as they come; retry shortly.")

    def submit(self, captured: Captured) -> None:
        """Queue an exchange for storage (never blocks the caller)."""
        size = len(captured.request) + len(captured.response)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
                self._thread.start()
            with self._counts:
                self._pending[captured.tenant.id] = self._pending.get(captured.tenant.id, 0) + size
                self._total += size
            self._queue.put(captured)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self.store(item)
            except Exception as exc:  # Keep serving; the loss is logged, not the content.
                log.error("could not retain an exchange: %s", type(exc).__name__)
            finally:
                self._done(item)

    def _done(self, item: Captured) -> None:
        size = len(item.request) + len(item.response)
        with self._counts:
            self._total -= size
            left = self._pending.get(item.tenant.id, 0) - size
            if left > 0:
                self._pending[item.tenant.id] = left
            else:
                self._pending.pop(item.tenant.id, None)

    def close(self) -> None:
        """Store what is queued and stop the writer (a later `submit` starts a new one)."""
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=10)
                self._thread = None

    flush = close

    def store(self, captured: Captured) -> str:
        tenant = captured.tenant
        self.keyring.ensure(tenant.id)
        exchange_id = "xch-" + secrets.token_hex(12)
        document = orjson.dumps(
            {
                "request": captured.request.decode("utf-8", "replace"),
                "response": captured.response.decode("utf-8", "replace"),
                "truncated": captured.truncated,
            }
        )
        sealed = encrypt(
            document, tenant_id=tenant.id, kind=KIND, object_id=exchange_id, kms=self.keyring.kms
        )
        now = utcnow()
        with self.db.tenant_transaction(tenant.id) as session:
            self.keyring.blobs.put(tenant.id, KIND, exchange_id, sealed)
            session.add(
                RetainedExchangeRow(
                    id=exchange_id,
                    tenant_id=tenant.id,
                    request_id=captured.request_id,
                    model=captured.model[:128],
                    bytes=len(document),
                    created_at=now,
                    expires_at=now + timedelta(days=tenant.config.retention_days),
                )
            )
        return exchange_id

    def list(self, tenant_id: str, *, limit: int = 100) -> list[RetainedInfo]:
        with self.db.tenant_transaction(tenant_id) as session:
            rows = session.execute(
                select(RetainedExchangeRow)
                .where(RetainedExchangeRow.tenant_id == tenant_id)
                .order_by(RetainedExchangeRow.created_at.desc())
                .limit(limit)
            ).scalars()
            return [_info(r) for r in rows]

    def get(self, tenant_id: str, exchange_id: str) -> dict[str, object]:
        with self.db.tenant_transaction(tenant_id) as session:
            row = session.get(RetainedExchangeRow, exchange_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"No such retained exchange: {exchange_id}")
            info = _info(row)
        sealed = self.keyring.blobs.get(tenant_id, KIND, exchange_id)
        plain = decrypt(
            sealed, tenant_id=tenant_id, kind=KIND, object_id=exchange_id, kms=self.keyring.kms
        )
        content: dict[str, object] = orjson.loads(plain)
        return {**info.json(), **content}

    def purge(self, now: datetime | None = None) -> int:
        """Delete every expired exchange, across tenants (the platform's job)."""
        cutoff = now or utcnow()
        with self.db.platform_transaction() as session:
            expired = session.execute(
                select(RetainedExchangeRow.id, RetainedExchangeRow.tenant_id).where(
                    RetainedExchangeRow.expires_at <= cutoff
                )
            ).all()
            session.execute(
                delete(RetainedExchangeRow).where(RetainedExchangeRow.expires_at <= cutoff)
            )
        for exchange_id, tenant_id in expired:
            self.keyring.blobs.delete(tenant_id, KIND, exchange_id)
        return len(expired)
