"""A vector store holds at most `BULKHEAD_VECTOR_STORE_MAX_FILES` attached files.

Each attached file was a row whatever its size, and an empty file costs no quota: 100,000
files in each of 1,000 stores were 10^8 rows.  Six attached at once stop at the bound (the
tenant's storage-usage row is locked first, so each counts alone, and the count is slowed
here so that overlapping counts would pass it); another store, the tenant's own or another
tenant's, has its own count; a store created with more files than the bound is refused
before it exists; removing a file makes room.  Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bulkhead.crypto import Kek, LocalKms, MemoryKekStore
from bulkhead.domain import Tenant, Tier
from bulkhead.errors import Conflict
from bulkhead.store import Database, upgrade
from bulkhead.store import vectors as vectors_module
from bulkhead.store.blobs import BlobStore
from bulkhead.store.bounds import TenantBounds
from bulkhead.store.files import FileService
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.repo.tenants import create_tenant
from bulkhead.store.schema import VectorStoreFileRow, VectorStoreRow
from bulkhead.store.sealed import SealedColumns
from bulkhead.store.vectors import VectorStores

STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
BOUND = 2


@pytest.fixture
def bounded(db_url: str, db_admin_url: str | None) -> Iterator[Database]:
    """A store whose vector stores may hold two files each."""
    database = Database(db_url, TenantBounds(vector_store_files=BOUND))
    upgrade(database, db_admin_url)
    yield database
    database.dispose()


@pytest.fixture
def services(bounded: Database, tmp_path: Path) -> tuple[VectorStores, FileService]:
    keyring = TenantKeyring(
        LocalKms(MemoryKekStore(), Kek.generate()),
        BlobStore(tmp_path),
        holders=(SealedColumns(bounded),),
    )
    return VectorStores(bounded, keyring), FileService(bounded, keyring, max_file_bytes=1 << 20)


def _tenant(db: Database, name: str) -> Tenant:
    with db.platform_transaction() as session:
        return create_tenant(session, name, Tier.SHARED)


def _attach(stores: VectorStores, tenant: Tenant, store_id: str, file_id: str) -> None:
    stores.attach(tenant.id, store_id, file_id, chunking=STATIC, attributes={})


def _links(db: Database, tenant: Tenant, store_id: str) -> int:
    with db.tenant_transaction(tenant.id) as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(VectorStoreFileRow)
                .where(VectorStoreFileRow.store_id == store_id)
            ).scalar_one()
        )


@pytest.mark.serial
def test_six_files_attached_at_once_stop_at_the_bound(
    bounded: Database,
    services: tuple[VectorStores, FileService],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stores, files = services
    tenant, other = _tenant(bounded, "acme"), _tenant(bounded, "globex")
    store = stores.create(tenant, name="docs", model="minilm-embed", metadata={})
    empty = [files.upload(tenant, f"{i}.txt", "assistants", b"").id for i in range(6)]
    real = vectors_module.check_link_room

    def slow(*args: Any) -> None:  # counted, then the transaction stays open a while
        real(*args)
        time.sleep(0.2)

    monkeypatch.setattr(vectors_module, "check_link_room", slow)
    made: list[str] = []
    refused: list[str] = []
    start = threading.Barrier(6)

    def attach(file_id: str) -> None:
        start.wait(10)
        try:
            _attach(stores, tenant, store.id, file_id)
            made.append(file_id)
        except Conflict as exc:
            refused.append(exc.message)

    threads = [threading.Thread(target=attach, args=(f,)) for f in empty]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(made) == BOUND and len(refused) == 6 - BOUND, (made, refused)
    assert all("BULKHEAD_VECTOR_STORE_MAX_FILES" in m for m in refused), refused
    assert _links(bounded, tenant, store.id) == BOUND
    # Another store of the tenant, and another tenant's store, have their own counts.
    second = stores.create(tenant, name="more", model="minilm-embed", metadata={})
    for file_id in empty[:BOUND]:
        _attach(stores, tenant, second.id, file_id)
    theirs = stores.create(other, name="docs", model="minilm-embed", metadata={})
    for i in range(BOUND):
        _attach(stores, other, theirs.id, files.upload(other, "x.txt", "assistants", b"").id)
    # Removing a file from the full store makes room for one more, and only one.
    stores.detach(tenant.id, store.id, made[0])
    left = [f for f in empty if f not in made]
    _attach(stores, tenant, store.id, left[0])
    with pytest.raises(Conflict, match="BULKHEAD_VECTOR_STORE_MAX_FILES"):
        _attach(stores, tenant, store.id, left[1])


def test_a_store_created_with_more_files_than_the_bound_is_never_made(
    bounded: Database, services: tuple[VectorStores, FileService]
) -> None:
    stores, _ = services
    tenant = _tenant(bounded, "acme")
    with pytest.raises(Conflict, match="BULKHEAD_VECTOR_STORE_MAX_FILES") as refused:
        stores.create(tenant, name="docs", model="minilm-embed", metadata={}, files=BOUND + 1)
    assert refused.value.param == "file_ids"
    with bounded.tenant_transaction(tenant.id) as session:
        assert session.execute(select(func.count()).select_from(VectorStoreRow)).scalar_one() == 0
    assert stores.create(tenant, name="ok", model="minilm-embed", metadata={}, files=BOUND).id
