"""Tenant files: metadata in SQL, contents envelope-encrypted under the tenant's KEK.

The associated data of every blob binds tenant, kind ("file") and file id,
so a blob copied to another tenant or another file id fails to open rather
than being served.  Plaintext exists only in memory, on its way in or out.

The storage quota is kept by a per-tenant counter (`StorageUsageRow`,
migration 0021) that equals the sum of the tenant's file sizes.  An upload
seals and writes its blob first, then records the file in one short
transaction whose conditional UPDATE adds the size only while the sum stays
within the quota: the database decides atomically (a row lock on PostgreSQL,
the write lock on SQLite), so concurrent uploads through any number of
gateways on one database never store more than the quota.  A refused upload
deletes its blob; a crash between the two leaves only an unreferenced blob.
The number of files is bounded too (`BULKHEAD_TENANT_MAX_FILES`, 409): bytes
alone let a tenant make rows and blobs without end from tiny files.  The same
transaction counts them, after the usage row is locked (`_check_count`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, literal, select, tuple_, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from bulkhead.crypto import decrypt, encrypt
from bulkhead.domain import Tenant, Tier
from bulkhead.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from bulkhead.store.bounds import bounds_of
from bulkhead.store.db import Database
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.schema import (
    FileRow,
    StorageUsageRow,
    UTCDateTime,
    VectorChunkRow,
    VectorStoreFileRow,
    VectorStoreRow,
    utcnow,
)

KIND = "file"
PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
GIB = 1 << 30
DEFAULT_STORAGE = {Tier.SHARED: 1 * GIB, Tier.MIG: 10 * GIB, Tier.DEDICATED: 100 * GIB}


@dataclass(frozen=True, slots=True)
class FileInfo:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: datetime

    def openai(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": int(self.created_at.timestamp()),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


def _info(row: FileRow) -> FileInfo:
    return FileInfo(row.id, row.filename, row.purpose, row.bytes, row.created_at)


def storage_quota(tenant: Tenant) -> int:
    configured = tenant.quotas.get("storage_bytes")
    return int(configured) if configured is not None else DEFAULT_STORAGE[tenant.tier]


class FileService:
    def __init__(self, db: Database, keyring: TenantKeyring, *, max_file_bytes: int):
        self.db, self.keyring = db, keyring
        self.blobs, self.kms = keyring.blobs, keyring.kms
        self.max_file_bytes = max_file_bytes

    def _row(
        self, session: Session, tenant_id: str, file_id: str, param: str = "file_id"
    ) -> FileRow:
        row = session.get(FileRow, file_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"No such File object: {file_id}", param=param)
        return row

    def _check_upload(self, session: Session, tenant: Tenant, purpose: str, size: int) -> None:
        """Cheap checks before any sealing: purpose, size, the quota and the count as they stand.

        The quota and the count are checked again, atomically, when the file is recorded.
        """
        if purpose not in PURPOSES:
            raise InvalidRequest(f"'purpose' must be one of {sorted(PURPOSES)}.", param="purpose")
        if size > self.max_file_bytes:
            raise PayloadTooLarge(f"Files are limited to {self.max_file_bytes} bytes.")
        usage = session.get(StorageUsageRow, tenant.id)
        if (usage.used_bytes if usage else 0) + size > storage_quota(tenant):
            raise _quota_exhausted()
        _check_count(session, tenant.id)

    def upload(self, tenant: Tenant, filename: str, purpose: str, data: bytes) -> FileInfo:
        with self.db.tenant_transaction(tenant.id) as session:
            self._check_upload(session, tenant, purpose, len(data))
        self.keyring.ensure(tenant.id)
        file_id = "file-" + secrets.token_hex(12)
        sealed = encrypt(data, tenant_id=tenant.id, kind=KIND, object_id=file_id, kms=self.kms)
        self.blobs.put(tenant.id, KIND, file_id, sealed)
        try:
            with self.db.tenant_transaction(tenant.id) as session:
                reserve(session, tenant.id, len(data), storage_quota(tenant))
                _check_count(session, tenant.id)  # after `reserve`: see `_check_count`
                row = FileRow(
                    id=file_id,
                    tenant_id=tenant.id,
                    filename=filename[:255] or "upload",
                    purpose=purpose,
                    bytes=len(data),
                    created_at=utcnow(),
                )
                session.add(row)
        except BaseException:
            self.blobs.delete(tenant.id, KIND, file_id)
            raise
        return _info(row)

    def list(
        self,
        tenant_id: str,
        *,
        after: str | None = None,
        limit: int = 10_000,
        descending: bool = True,
        purpose: str | None = None,
    ) -> tuple[list[FileInfo], bool]:
        """One page of the tenant's files and whether more follow (OpenAI cursor paging).

        Ordered by (created_at, id); `after` is the id of the last file of the
        previous page, and must be one of this tenant's files.
        """
        with self.db.tenant_transaction(tenant_id) as session:
            query = select(FileRow).where(FileRow.tenant_id == tenant_id)
            if purpose is not None:
                query = query.where(FileRow.purpose == purpose)
            if after is not None:
                cursor = self._row(session, tenant_id, after, param="after")
                key = tuple_(FileRow.created_at, FileRow.id)
                mark = tuple_(literal(cursor.created_at, UTCDateTime()), literal(cursor.id))
                query = query.where(key < mark if descending else key > mark)
            if descending:
                query = query.order_by(FileRow.created_at.desc(), FileRow.id.desc())
            else:
                query = query.order_by(FileRow.created_at, FileRow.id)
            rows = list(session.execute(query.limit(limit + 1)).scalars())
            return [_info(r) for r in rows[:limit]], len(rows) > limit

    def get(self, tenant_id: str, file_id: str) -> FileInfo:
        with self.db.tenant_transaction(tenant_id) as session:
            return _info(self._row(session, tenant_id, file_id))

    def content(self, tenant_id: str, file_id: str) -> bytes:
        self.get(tenant_id, file_id)
        sealed = self.blobs.get(tenant_id, KIND, file_id)
        return decrypt(sealed, tenant_id=tenant_id, kind=KIND, object_id=file_id, kms=self.kms)

    def delete(self, tenant_id: str, file_id: str) -> None:
        with self.db.tenant_transaction(tenant_id) as session:
            lock_usage(session, tenant_id)  # before the links it deletes: see `lock_usage`
            size = self._row(session, tenant_id, file_id).bytes
            size += drop_from_vector_stores(session, tenant_id, file_id)
            gone = session.execute(
                delete(FileRow).where(FileRow.id == file_id, FileRow.tenant_id == tenant_id)
            )
            # A concurrent delete of the same file got there first: free its bytes once.
            if getattr(gone, "rowcount", 0) != 1:
                raise NotFound(f"No such File object: {file_id}", param="file_id")
            release(session, tenant_id, size)
        self.blobs.delete(tenant_id, KIND, file_id)


def drop_from_vector_stores(session: Session, tenant_id: str, file_id: str) -> int:
    """Remove the file from every vector store (`store.vectors`): its sealed chunks go, the
    stores' indexes are rebuilt on next use, and the chunks' bytes are returned to release."""
    chunks = (VectorChunkRow.tenant_id == tenant_id, VectorChunkRow.file_id == file_id)
    freed = session.execute(
        select(func.coalesce(func.sum(VectorChunkRow.sealed_bytes), 0)).where(*chunks)
    ).scalar_one()
    links = (VectorStoreFileRow.tenant_id == tenant_id, VectorStoreFileRow.file_id == file_id)
    stores = select(VectorStoreFileRow.store_id).where(*links).scalar_subquery()
    session.execute(
        update(VectorStoreRow)
        .where(VectorStoreRow.tenant_id == tenant_id, VectorStoreRow.id.in_(stores))
        .values(generation=VectorStoreRow.generation + 1)
    )
    session.execute(delete(VectorChunkRow).where(*chunks))
    session.execute(delete(VectorStoreFileRow).where(*links))
    return int(freed)


def _check_count(session: Session, tenant_id: str) -> None:
    """Refuse (409) a file more than the tenant's bound (`TenantBounds.files`).

    Called after `reserve`, whose update holds the tenant's usage row until the transaction
    ends: the tenant's uploads count one at a time, and each sees the files of those before.
    Not the tenant's lock: ingestion takes the usage row, then inserts chunks (which wait
    for a lock on the tenant's row), so an upload taking them the other way round would
    deadlock with it on PostgreSQL."""
    held = session.execute(
        select(func.count()).select_from(FileRow).where(FileRow.tenant_id == tenant_id)
    ).scalar_one()
    if held >= bounds_of(session).files:
        raise Conflict(
            f"The tenant holds {held} files, the most BULKHEAD_TENANT_MAX_FILES allows: "
            "delete some first."
        )


def _quota_exhausted() -> PayloadTooLarge:
    message = "The tenant's storage quota is exhausted."
    return PayloadTooLarge(message, code="storage_quota_exceeded")


def _add_within(session: Session, tenant_id: str, size: int, quota: int) -> bool:
    """Add `size` to the tenant's counter if the sum stays within `quota`, in one statement.

    PostgreSQL re-checks the condition on the row it locked (so concurrent
    transactions see each other's additions); SQLite runs one writer at a time.
    """
    added = session.execute(
        update(StorageUsageRow)
        .where(
            StorageUsageRow.tenant_id == tenant_id,
            StorageUsageRow.used_bytes + size <= quota,
        )
        .values(used_bytes=StorageUsageRow.used_bytes + size)
    )
    return bool(getattr(added, "rowcount", 0) == 1)


def reserve(session: Session, tenant_id: str, size: int, quota: int) -> None:
    """Count `size` more stored bytes for the tenant, or raise: the quota is exhausted."""
    if _add_within(session, tenant_id, size, quota):
        return
    # Perhaps the tenant's first file: make its counter (a concurrent first upload may
    # have made it already, which is fine), then try again on the real row.  Always:
    # a first upload committed since the statement above would make a "does the row
    # exist?" check say yes, and this call would be refused a quota it has.
    insert: Any = sqlite.insert
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql  # on PostgreSQL alone (store/direct.py)

        insert = postgresql.insert
    session.execute(
        insert(StorageUsageRow)
        .values(tenant_id=tenant_id, used_bytes=0)
        .on_conflict_do_nothing(index_elements=["tenant_id"])
    )
    if _add_within(session, tenant_id, size, quota):
        return
    raise _quota_exhausted()


def lock_usage(session: Session, tenant_id: str) -> None:
    """Hold the tenant's usage row until the transaction ends; first, before any other write.

    Ingestion's end (`VectorStores.complete`) and every removal of chunks (a file's, a
    link's, a store's deletion) take it first, then the rows of links and chunks: the other
    way round, a deletion holding a link and waiting on the usage row deadlocked on
    PostgreSQL with ingestion holding the usage row and inserting chunks for that link.
    An update that changes nothing: a row lock on PostgreSQL, the write lock on SQLite.
    """
    session.execute(
        update(StorageUsageRow)
        .where(StorageUsageRow.tenant_id == tenant_id)
        .values(used_bytes=StorageUsageRow.used_bytes)
    )


def release(session: Session, tenant_id: str, size: int) -> None:
    session.execute(
        update(StorageUsageRow)
        .where(StorageUsageRow.tenant_id == tenant_id)
        .values(used_bytes=StorageUsageRow.used_bytes - size)
    )
