"""A file's or store's deletion racing its ingestion's end (`VectorStores.complete`), on each
backend: both take the tenant's storage-usage row first (review8).  Before, ingestion took
the usage row and then waited on its link row, while the deletion held the link row and
waited on the usage row: PostgreSQL broke the deadlock by failing one of them; the other
order had ingestion insert chunks for a link deleted meanwhile (a foreign-key error)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from bulkhead.crypto import Kek, LocalKms, MemoryKekStore
from bulkhead.domain import Tier
from bulkhead.errors import NotFound
from bulkhead.store import Database
from bulkhead.store import files as files_module
from bulkhead.store import vectors as vectors_module
from bulkhead.store.blobs import BlobStore
from bulkhead.store.files import FileService
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.repo.tenants import create_tenant
from bulkhead.store.schema import StorageUsageRow
from bulkhead.store.sealed import SealedColumns
from bulkhead.store.vectors import VectorStores

STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
REMOVALS: dict[str, Callable[[VectorStores, FileService, str, str, str], None]] = {
    "file": lambda stores, files, tenant, store, file: files.delete(tenant, file),
    "link": lambda stores, files, tenant, store, file: stores.detach(tenant, store, file),
    "store": lambda stores, files, tenant, store, file: stores.delete(tenant, store),
}


def _slowed(module: Any, name: str, monkeypatch: pytest.MonkeyPatch, done: threading.Event) -> None:
    """`module.name` runs, then says so and holds its transaction open a while."""
    real = getattr(module, name)

    def slow(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        done.set()
        time.sleep(0.5)
        return result

    monkeypatch.setattr(module, name, slow)


@pytest.mark.serial
@pytest.mark.parametrize("first", ["ingestion", "removal"])
@pytest.mark.parametrize("removal", sorted(REMOVALS))
def test_a_removal_racing_the_end_of_ingestion_fails_neither(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, removal: str, first: str
) -> None:
    keyring = TenantKeyring(
        LocalKms(MemoryKekStore(), Kek.generate()),
        BlobStore(tmp_path),
        holders=(SealedColumns(db),),
    )
    with db.platform_transaction() as session:
        tenant = create_tenant(session, "acme", Tier.SHARED)
    stores, files = VectorStores(db, keyring), FileService(db, keyring, max_file_bytes=1 << 20)
    store = stores.create(tenant, name="docs", model="minilm-embed", metadata={})
    upload = files.upload(tenant, "a.txt", "assistants", b"hello")
    stores.attach(tenant.id, store.id, upload.id, chunking=STATIC, attributes={})
    started = threading.Event()
    if first == "ingestion":  # ingestion has counted its chunks' bytes when the removal comes
        _slowed(vectors_module, "reserve", monkeypatch, started)
    else:  # the removal has freed the bytes (its last step) when ingestion ends
        _slowed(
            files_module if removal == "file" else vectors_module, "release", monkeypatch, started
        )
    errors: list[str] = []

    def ingest() -> None:
        if first == "removal":
            started.wait(5)
        try:
            vectors = np.ones((3, 8), dtype=np.float32)
            stores.complete(tenant, store.id, upload.id, ["x", "y", "z"], vectors)
        except NotFound:  # the store was deleted first: the service marks nothing (its link
            assert (removal, first) == ("store", "removal")  # is gone with it)
        except Exception as exc:
            errors.append(f"ingestion: {type(exc).__name__}: {str(exc)[:200]}")

    def remove() -> None:
        if first == "ingestion":
            started.wait(5)
        try:
            REMOVALS[removal](stores, files, tenant.id, store.id, upload.id)
        except Exception as exc:
            errors.append(f"removal: {type(exc).__name__}: {str(exc)[:200]}")

    threads = [threading.Thread(target=ingest), threading.Thread(target=remove)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    # Whatever came first, no chunk's bytes stay counted: every chunk was removed.
    with db.tenant_transaction(tenant.id) as session:
        used = session.execute(
            select(StorageUsageRow.used_bytes).where(StorageUsageRow.tenant_id == tenant.id)
        ).scalar_one()
    assert used == (0 if removal == "file" else len(b"hello"))  # the file alone, if kept
