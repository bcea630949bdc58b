"""A file left `in_progress` by a replica that stopped is failed, with a reason, by the sweep;
one whose replica still beats is left alone (issue 18), both backends."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bulkhead.crypto import Kek, LocalKms, MemoryKekStore
from bulkhead.domain import Tenant, Tier
from bulkhead.store import Database
from bulkhead.store.blobs import BlobStore
from bulkhead.store.files import FileService
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.repo.tenants import create_tenant
from bulkhead.store.schema import utcnow
from bulkhead.store.vectors import STALLED, STALLED_AFTER_S, VectorStores
from bulkhead.vectors.chunking import Chunking
from bulkhead.vectors.service import VectorService

STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


@pytest.fixture
def parts(db: Database, tmp_path: Path) -> tuple[VectorStores, FileService, Tenant]:
    keyring = TenantKeyring(LocalKms(MemoryKekStore(), Kek.generate()), BlobStore(tmp_path))
    with db.platform_transaction() as session:
        a = create_tenant(session, "acme", Tier.SHARED)
    return VectorStores(db, keyring), FileService(db, keyring, max_file_bytes=1 << 20), a


def _attached(parts: tuple[VectorStores, FileService, Tenant], n: int) -> tuple[str, list[str]]:
    stores, files, a = parts
    store = stores.create(a, name="docs", model="m", metadata={})
    ids = []
    for i in range(n):
        upload = files.upload(a, f"{i}.txt", "assistants", b"hello")
        stores.attach(a.id, store.id, upload.id, chunking=STATIC, attributes={})
        ids.append(upload.id)
    return store.id, ids


def test_a_file_whose_replica_stopped_is_failed_with_a_reason(parts) -> None:  # type: ignore[no-untyped-def]
    stores, _, a = parts
    store_id, (dead, alive, done) = _attached(parts, 3)
    stores.complete(a, store_id, done, ["t"], np.ones((1, 4), np.float32))
    # The replica that took the attach calls restarted: nothing ingests `dead` any more.
    assert stores.fail_stalled() == 0  # not yet past the bound
    later = utcnow() + timedelta(seconds=STALLED_AFTER_S + 1)
    stores.heartbeat(a.id, [(store_id, alive)], later - timedelta(seconds=30))  # still at it
    assert stores.fail_stalled(later) == 1
    gone = stores.link(a.id, store_id, dead)
    assert gone.status == "failed" and gone.openai()["last_error"] == {
        "code": "server_error",
        "message": STALLED,
    }
    assert stores.link(a.id, store_id, alive).status == "in_progress"
    assert stores.link(a.id, store_id, done).status == "completed"
    # A late `complete` from a replica that was only slow writes nothing for a failed file.
    stores.complete(a, store_id, dead, ["t"], np.ones((1, 4), np.float32))
    assert stores.link(a.id, store_id, dead).status == "failed"


def test_an_ingesting_replica_beats_for_its_files_even_while_they_wait(parts) -> None:  # type: ignore[no-untyped-def]
    stores, files, a = parts
    store_id, ids = _attached(parts, 3)
    release = asyncio.Event()

    async def embed(origin: object, model: str, texts: list[str]) -> Any:
        await release.wait()
        return np.ones((len(texts), 4), dtype=np.float32)

    async def run() -> None:
        service = VectorService(stores, files, embed)
        service.heartbeat_s = 0.05
        info = stores.get(a.id, store_id)
        for file_id in ids:
            service.ingest_later(
                {}, a, info, stores.link(a.id, store_id, file_id), Chunking(100, 0)
            )
        await asyncio.sleep(0.5)
        # Past the bound since the attach calls, but every file has a fresh heartbeat.
        soon = utcnow() + timedelta(seconds=STALLED_AFTER_S - 5)
        assert await asyncio.to_thread(stores.fail_stalled, soon) == 0
        release.set()
        await service.settle()

    asyncio.run(run())
    assert {stores.link(a.id, store_id, f).status for f in ids} == {"completed"}
