"""Vector stores in SQL: stores, attached files, and chunk segments sealed under the tenant's KEK.

Every query runs in the caller's tenant transaction and filters on
`tenant_id` (RLS holds it on PostgreSQL as well): another tenant's store or
file id is "not found", like one that never existed.  Ids are 96 random bits
(`vs_…`); a store's files are the tenant's own uploaded files, by their ids.

Chunks are written in segments (`vectors.segments`), each sealed with
associated data (tenant, "vector-chunks", "<store>/<file>/<n>"), so a
segment moved to another tenant, store, file or place fails to open.  Their
sealed bytes count against the tenant's storage quota in the same
transaction that writes them (`files.reserve`), and are released when the
file is detached, the store deleted or the file itself deleted
(`files.FileService.delete`); deleting the tenant removes every row by
cascade and crypto-shreds its KEK.  Rotation re-wraps the sealed column
without re-embedding (`store.sealed.SealedColumns`).

A store's `generation` moves whenever its chunks change, so a replica's
in-memory index (`vectors.index.IndexCache`) of an older generation is
rebuilt on its next search.  A tenant holds at most
`BULKHEAD_TENANT_MAX_VECTOR_STORES` stores (`create`, 409, counted under
its lock): an empty store costs no storage quota.  A store holds at most
`BULKHEAD_VECTOR_STORE_MAX_FILES` files (`store.vector_links`).
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import orjson
from sqlalchemy import delete, func, literal, select, tuple_, update
from sqlalchemy.orm import Session

from bulkhead.crypto import decrypt, encrypt
from bulkhead.domain import Tenant
from bulkhead.errors import Conflict, NotFound
from bulkhead.store.bounds import bounds_of
from bulkhead.store.db import Database
from bulkhead.store.files import lock_usage, release, reserve, storage_quota
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.repo import lock_tenant
from bulkhead.store.schema import (
    FileRow,
    UTCDateTime,
    VectorChunkRow,
    VectorStoreFileRow,
    VectorStoreRow,
    utcnow,
)
from bulkhead.store.vector_graphs import GraphStore
from bulkhead.store.vector_info import FileLink, StoreInfo, file_link, store_info
from bulkhead.store.vector_links import check_link_room, check_new_store
from bulkhead.vectors import segments
from bulkhead.vectors.index import EXACT_BELOW, Chunk, IndexCache, StoreIndex

if TYPE_CHECKING:
    from bulkhead.vectors.index import Matrix

KIND = "vector-chunks"
HEARTBEAT_S = 30  # an ingesting replica touches its files' `heartbeat_at` this often
STALLED_AFTER_S = 600  # a file in progress with no heartbeat for this long is failed
STALLED = "The replica ingesting the file stopped; remove the file and attach it again."


def _page(query, created, ident, cursor, descending: bool, limit: int):  # type: ignore[no-untyped-def]
    """Cursor paging by (created_at, id), as `store.files` does."""
    if cursor is not None:
        key = tuple_(created, ident)
        mark = tuple_(literal(cursor[0], UTCDateTime()), literal(cursor[1]))
        query = query.where(key < mark if descending else key > mark)
    order = (created.desc(), ident.desc()) if descending else (created, ident)
    return query.order_by(*order).limit(limit + 1)


class VectorStores:
    def __init__(
        self,
        db: Database,
        keyring: TenantKeyring,
        cache: IndexCache | None = None,
        *,
        exact_below: int = EXACT_BELOW,
    ):
        """`exact_below`: stores with fewer chunks are searched exactly, others by HNSW."""
        self.db, self.keyring, self.kms = db, keyring, keyring.kms
        self.cache = cache or IndexCache()
        self.exact_below = exact_below
        self.graphs = GraphStore(keyring.blobs, keyring.kms)

    # Stores ---------------------------------------------------------------

    def _row(self, session: Session, tenant_id: str, store_id: str) -> VectorStoreRow:
        row = session.get(VectorStoreRow, store_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"No vector store found with id '{store_id}'.", param="vector_store_id")
        return row

    def _info(self, session: Session, row: VectorStoreRow) -> StoreInfo:
        usage = session.execute(
            select(func.coalesce(func.sum(VectorChunkRow.sealed_bytes), 0)).where(
                VectorChunkRow.tenant_id == row.tenant_id, VectorChunkRow.store_id == row.id
            )
        ).scalar_one()
        counts = session.execute(
            select(VectorStoreFileRow.status, func.count())
            .where(
                VectorStoreFileRow.tenant_id == row.tenant_id,
                VectorStoreFileRow.store_id == row.id,
            )
            .group_by(VectorStoreFileRow.status)
        )
        return store_info(row, int(usage), {str(s): int(n) for s, n in counts})

    def create(
        self, tenant: Tenant, *, name: str, model: str, metadata: dict[str, str], files: int = 0
    ) -> StoreInfo:
        """A new store, refused whole if `files` pass what one may hold (`vector_links`)."""
        now = utcnow()
        row = VectorStoreRow(
            id="vs_" + secrets.token_hex(12),
            tenant_id=tenant.id,
            name=name,
            model=model,
            dimensions=None,
            metadata_json=orjson.dumps(metadata).decode(),
            generation=0,
            created_at=now,
            last_active_at=now,
        )
        with self.db.tenant_transaction(tenant.id) as session:
            check_new_store(session, files)
            lock_tenant(session, tenant.id)  # what it counts, it counts alone
            held = session.execute(
                select(func.count())
                .select_from(VectorStoreRow)
                .where(VectorStoreRow.tenant_id == tenant.id)
            ).scalar_one()
            if held >= bounds_of(session).vector_stores:
                raise Conflict(
                    f"The tenant holds {held} vector stores, the most "
                    "BULKHEAD_TENANT_MAX_VECTOR_STORES allows: delete one first."
                )
            session.add(row)
            session.flush()
            return self._info(session, row)

    def get(self, tenant_id: str, store_id: str) -> StoreInfo:
        with self.db.tenant_transaction(tenant_id) as session:
            return self._info(session, self._row(session, tenant_id, store_id))

    def list(
        self, tenant_id: str, *, after: str | None, limit: int, descending: bool = True
    ) -> tuple[list[StoreInfo], bool]:
        with self.db.tenant_transaction(tenant_id) as session:
            cursor = None
            if after is not None:
                found = self._row(session, tenant_id, after)
                cursor = (found.created_at, found.id)
            query = select(VectorStoreRow).where(VectorStoreRow.tenant_id == tenant_id)
            query = _page(
                query, VectorStoreRow.created_at, VectorStoreRow.id, cursor, descending, limit
            )
            rows = list(session.execute(query).scalars())
            return [self._info(session, r) for r in rows[:limit]], len(rows) > limit

    def modify(
        self, tenant_id: str, store_id: str, *, name: str | None, metadata: dict[str, str] | None
    ) -> StoreInfo:
        with self.db.tenant_transaction(tenant_id) as session:
            row = self._row(session, tenant_id, store_id)
            if name is not None:
                row.name = name
            if metadata is not None:
                row.metadata_json = orjson.dumps(metadata).decode()
            session.flush()
            return self._info(session, row)

    def delete(self, tenant_id: str, store_id: str) -> None:
        with self.db.tenant_transaction(tenant_id) as session:
            lock_usage(session, tenant_id)  # before the links it deletes: see `lock_usage`
            self._row(session, tenant_id, store_id)
            freed = self._drop_chunks(session, tenant_id, VectorChunkRow.store_id == store_id)
            session.execute(
                delete(VectorStoreFileRow).where(
                    VectorStoreFileRow.tenant_id == tenant_id,
                    VectorStoreFileRow.store_id == store_id,
                )
            )
            session.execute(
                delete(VectorStoreRow).where(
                    VectorStoreRow.tenant_id == tenant_id, VectorStoreRow.id == store_id
                )
            )
            release(session, tenant_id, freed)
        self.cache.drop((tenant_id, store_id))
        self.graphs.drop(tenant_id, store_id)

    def _drop_chunks(self, session: Session, tenant_id: str, which: object) -> int:
        where = (VectorChunkRow.tenant_id == tenant_id, which)
        freed = session.execute(
            select(func.coalesce(func.sum(VectorChunkRow.sealed_bytes), 0)).where(*where)  # type: ignore[arg-type]
        ).scalar_one()
        session.execute(delete(VectorChunkRow).where(*where))  # type: ignore[arg-type]
        return int(freed)

    # Files ----------------------------------------------------------------

    def _link_row(
        self, session: Session, tenant_id: str, store_id: str, file_id: str
    ) -> VectorStoreFileRow:
        row = session.get(VectorStoreFileRow, (store_id, file_id))
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"No file found with id '{file_id}' in vector store.", param="file_id")
        return row

    def attach(
        self,
        tenant_id: str,
        store_id: str,
        file_id: str,
        *,
        chunking: dict[str, object],
        attributes: dict[str, object],
    ) -> FileLink:
        """Attach one of the tenant's files (status `in_progress`); ingestion follows."""
        with self.db.tenant_transaction(tenant_id) as session:
            lock_usage(session, tenant_id)  # first: what it counts, it counts alone
            self._row(session, tenant_id, store_id)
            upload = session.get(FileRow, file_id)
            if upload is None or upload.tenant_id != tenant_id:
                raise NotFound(f"No such File object: {file_id}", param="file_id")
            if session.get(VectorStoreFileRow, (store_id, file_id)) is not None:
                raise Conflict(
                    f"The file '{file_id}' is already in the vector store.", param="file_id"
                )
            check_link_room(session, tenant_id, store_id)
            row = VectorStoreFileRow(
                store_id=store_id,
                file_id=file_id,
                tenant_id=tenant_id,
                status="in_progress",
                chunking=orjson.dumps(chunking).decode(),
                attributes=orjson.dumps(attributes).decode(),
                usage_bytes=0,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return file_link(row)

    def link(self, tenant_id: str, store_id: str, file_id: str) -> FileLink:
        with self.db.tenant_transaction(tenant_id) as session:
            self._row(session, tenant_id, store_id)
            return file_link(self._link_row(session, tenant_id, store_id, file_id))

    def links(
        self,
        tenant_id: str,
        store_id: str,
        *,
        after: str | None,
        limit: int,
        descending: bool = True,
        status: str | None = None,
    ) -> tuple[builtins.list[FileLink], bool]:
        with self.db.tenant_transaction(tenant_id) as session:
            self._row(session, tenant_id, store_id)
            cursor = None
            if after is not None:
                found = self._link_row(session, tenant_id, store_id, after)
                cursor = (found.created_at, found.file_id)
            query = select(VectorStoreFileRow).where(
                VectorStoreFileRow.tenant_id == tenant_id, VectorStoreFileRow.store_id == store_id
            )
            if status is not None:
                query = query.where(VectorStoreFileRow.status == status)
            query = _page(
                query,
                VectorStoreFileRow.created_at,
                VectorStoreFileRow.file_id,
                cursor,
                descending,
                limit,
            )
            rows = list(session.execute(query).scalars())
            return [file_link(r) for r in rows[:limit]], len(rows) > limit

    def detach(self, tenant_id: str, store_id: str, file_id: str) -> None:
        with self.db.tenant_transaction(tenant_id) as session:
            lock_usage(session, tenant_id)  # before the link it deletes: see `lock_usage`
            self._row(session, tenant_id, store_id)
            self._link_row(session, tenant_id, store_id, file_id)
            freed = self._drop_chunks(
                session,
                tenant_id,
                (VectorChunkRow.store_id == store_id) & (VectorChunkRow.file_id == file_id),
            )
            session.execute(
                delete(VectorStoreFileRow).where(
                    VectorStoreFileRow.tenant_id == tenant_id,
                    VectorStoreFileRow.store_id == store_id,
                    VectorStoreFileRow.file_id == file_id,
                )
            )
            release(session, tenant_id, freed)
            _bump(session, tenant_id, store_id)

    # Ingestion ------------------------------------------------------------

    def fail(self, tenant_id: str, store_id: str, file_id: str, code: str, message: str) -> None:
        with self.db.tenant_transaction(tenant_id) as session:
            session.execute(
                update(VectorStoreFileRow)
                .where(
                    VectorStoreFileRow.tenant_id == tenant_id,
                    VectorStoreFileRow.store_id == store_id,
                    VectorStoreFileRow.file_id == file_id,
                    VectorStoreFileRow.status == "in_progress",
                )
                .values(status="failed", error_code=code, error_message=message[:512])
            )

    def heartbeat(
        self, tenant_id: str, links: Sequence[tuple[str, str]], now: datetime | None = None
    ) -> None:
        """This replica is still ingesting these (store, file) links of the tenant."""
        with self.db.tenant_transaction(tenant_id) as session:
            for store_id, file_id in links:
                session.execute(
                    update(VectorStoreFileRow)
                    .where(
                        VectorStoreFileRow.tenant_id == tenant_id,
                        VectorStoreFileRow.store_id == store_id,
                        VectorStoreFileRow.file_id == file_id,
                        VectorStoreFileRow.status == "in_progress",
                    )
                    .values(heartbeat_at=now or utcnow())
                )

    def fail_stalled(self, now: datetime | None = None) -> int:
        """Fail every tenant's files whose ingesting replica stopped (no heartbeat for
        `STALLED_AFTER_S`): they cannot be re-queued, since ingestion embeds with the
        attach call's credential, which is not kept.  The client attaches them again."""
        before = (now or utcnow()) - timedelta(seconds=STALLED_AFTER_S)
        seen = func.coalesce(VectorStoreFileRow.heartbeat_at, VectorStoreFileRow.created_at)
        with self.db.platform_transaction() as session:
            done = session.execute(
                update(VectorStoreFileRow)
                .where(VectorStoreFileRow.status == "in_progress", seen < before)
                .values(status="failed", error_code="server_error", error_message=STALLED)
                .execution_options(synchronize_session=False)
            )
            return int(done.rowcount or 0)  # type: ignore[attr-defined]

    def complete(
        self, tenant: Tenant, store_id: str, file_id: str, texts: Sequence[str], vectors: Matrix
    ) -> None:
        """Seal the file's chunks in segments, count them against the quota, mark it completed.

        Refused (`Conflict`) if the store's dimensions differ; a file detached
        meanwhile is left alone (its rows are gone, nothing is written).
        """
        self.keyring.ensure(tenant.id)
        sealed = []
        for seq, start in enumerate(range(0, len(texts), segments.SEGMENT)):
            end = start + segments.SEGMENT
            segment_id = f"{store_id}/{file_id}/{seq}"
            plain = segments.encode(vectors[start:end], list(texts[start:end]))
            box = encrypt(plain, tenant_id=tenant.id, kind=KIND, object_id=segment_id, kms=self.kms)
            sealed.append((segment_id, seq, len(texts[start:end]), box))
        with self.db.tenant_transaction(tenant.id) as session:
            # First: a removal of the link then waits for this transaction, or this one
            # finds the link gone (`files.lock_usage`).
            lock_usage(session, tenant.id)
            store = self._row(session, tenant.id, store_id)
            link = session.get(VectorStoreFileRow, (store_id, file_id))
            if link is None or link.tenant_id != tenant.id or link.status != "in_progress":
                return
            if len(texts) and store.dimensions not in (None, vectors.shape[1]):
                raise Conflict(
                    f"The vectors have {vectors.shape[1]} dimensions; the store's have "
                    f"{store.dimensions}.",
                    code="dimensions_mismatch",
                )
            total = sum(len(box) for *_, box in sealed)
            reserve(session, tenant.id, total, storage_quota(tenant))
            for segment_id, seq, count, box in sealed:
                session.add(
                    VectorChunkRow(
                        id=segment_id,
                        tenant_id=tenant.id,
                        store_id=store_id,
                        file_id=file_id,
                        seq=seq,
                        count=count,
                        sealed_bytes=len(box),
                        sealed=box,
                    )
                )
            if len(texts):
                store.dimensions = vectors.shape[1]
            link.status, link.usage_bytes = "completed", total
            _bump(session, tenant.id, store_id)

    # Search ---------------------------------------------------------------

    def lookup(self, tenant_id: str, store_id: str) -> tuple[StoreInfo, StoreIndex | None]:
        """The store, and its index if one of its current generation is loaded (never loads)."""
        with self.db.tenant_transaction(tenant_id) as session:
            row = self._row(session, tenant_id, store_id)
            row.last_active_at = utcnow()
            info = store_info(row)
        return info, self.cache.peek((tenant_id, store_id), info.generation)

    def index(self, tenant_id: str, store_id: str) -> tuple[StoreInfo, StoreIndex]:
        """The store and its index: from the cache when its generation is current."""
        info, _ = self.lookup(tenant_id, store_id)
        index = self.cache.get(
            (tenant_id, store_id), info.generation, lambda: self._load(tenant_id, store_id)
        )
        return info, index

    def _load(self, tenant_id: str, store_id: str) -> StoreIndex:
        """Decrypt every segment of the store and index it: a cold store.

        A large store's graph is opened from its sealed save when that is of
        this very generation, else built and saved for the next cold load.
        """
        import numpy as np  # with the first vector store (`vectors.index`)

        with self.db.tenant_transaction(tenant_id) as session:
            generation = self._row(session, tenant_id, store_id).generation
            rows = session.execute(
                select(VectorChunkRow.id, VectorChunkRow.file_id, VectorChunkRow.sealed)
                .where(VectorChunkRow.tenant_id == tenant_id, VectorChunkRow.store_id == store_id)
                .order_by(VectorChunkRow.file_id, VectorChunkRow.seq)
            ).all()
        chunks: list[Chunk] = []
        blocks: list[Matrix] = []
        for segment_id, file_id, box in rows:
            plain = decrypt(
                bytes(box), tenant_id=tenant_id, kind=KIND, object_id=segment_id, kms=self.kms
            )
            vectors, texts = segments.decode(plain)
            blocks.append(vectors)
            chunks.extend(Chunk(file_id, t) for t in texts)
        matrix = np.concatenate(blocks) if blocks else np.zeros((0, 1), dtype=np.float32)
        if len(chunks) < self.exact_below:
            return StoreIndex(chunks, matrix, self.exact_below)
        saved = self.graphs.load(tenant_id, store_id, generation, len(chunks))
        index = StoreIndex(chunks, matrix, self.exact_below, saved)
        if saved is None and index.graph is not None:
            self.graphs.save(tenant_id, store_id, generation, index.graph)
        return index

    def attributes(self, tenant_id: str, store_id: str) -> dict[str, dict[str, object]]:
        """Each completed file's attributes (what `filters` test)."""
        with self.db.tenant_transaction(tenant_id) as session:
            rows = session.execute(
                select(VectorStoreFileRow.file_id, VectorStoreFileRow.attributes).where(
                    VectorStoreFileRow.tenant_id == tenant_id,
                    VectorStoreFileRow.store_id == store_id,
                )
            ).all()
        return {file_id: orjson.loads(attrs) for file_id, attrs in rows}

    def filenames(self, tenant_id: str, file_ids: Sequence[str]) -> dict[str, str]:
        with self.db.tenant_transaction(tenant_id) as session:
            rows = session.execute(
                select(FileRow.id, FileRow.filename).where(
                    FileRow.tenant_id == tenant_id, FileRow.id.in_(list(file_ids))
                )
            ).all()
        return {i: n for i, n in rows}


def _bump(session: Session, tenant_id: str, store_id: str) -> None:
    session.execute(
        update(VectorStoreRow)
        .where(VectorStoreRow.tenant_id == tenant_id, VectorStoreRow.id == store_id)
        .values(generation=VectorStoreRow.generation + 1)
    )
