"""Vector stores in SQL: sealed segments, isolation, quota, rotation (issue 18), both backends."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from bulkhead.crypto import DecryptionFailed, Kek, LocalKms, MemoryKekStore
from bulkhead.domain import Tenant, Tier
from bulkhead.errors import NotFound, PayloadTooLarge
from bulkhead.store import Database
from bulkhead.store.blobs import BlobStore
from bulkhead.store.files import FileService
from bulkhead.store.keyring import TenantKeyring
from bulkhead.store.repo.tenants import create_tenant
from bulkhead.store.schema import StorageUsageRow, VectorChunkRow
from bulkhead.store.sealed import SealedColumns
from bulkhead.store.vectors import VectorStores
from bulkhead.vectors import segments

STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


@pytest.fixture
def parts(db: Database, tmp_path: Path) -> tuple[VectorStores, FileService, Tenant, Tenant]:
    keyring = TenantKeyring(
        LocalKms(MemoryKekStore(), Kek.generate()),
        BlobStore(tmp_path),
        holders=(SealedColumns(db),),
    )
    with db.platform_transaction() as session:
        a = create_tenant(session, "acme", Tier.SHARED)
        b = create_tenant(session, "bravo", Tier.SHARED)
    return VectorStores(db, keyring), FileService(db, keyring, max_file_bytes=1 << 20), a, b


def _filled(
    parts: tuple[VectorStores, FileService, Tenant, Tenant], n: int = 300
) -> tuple[str, str, np.ndarray]:
    stores, files, a, _ = parts
    store = stores.create(a, name="docs", model="minilm-embed", metadata={})
    upload = files.upload(a, "a.txt", "assistants", b"hello")
    stores.attach(a.id, store.id, upload.id, chunking=STATIC, attributes={"lang": "en"})
    vectors = np.random.default_rng(1).standard_normal((n, 8)).astype(np.float32)
    stores.complete(a, store.id, upload.id, [f"chunk {i}" for i in range(n)], vectors)
    return store.id, upload.id, vectors


def test_chunks_are_sealed_in_segments_and_searched(parts, db: Database) -> None:  # type: ignore[no-untyped-def]
    stores, _, a, _ = parts
    store_id, _, vectors = _filled(parts)
    with db.tenant_transaction(a.id) as session:
        rows = session.execute(select(VectorChunkRow)).scalars().all()
        assert len(rows) == 2 and all(b"chunk 1" not in r.sealed for r in rows)
    info, index = stores.index(a.id, store_id)
    assert info.dimensions == 8 and len(index.chunks) == 300
    best = index.search(vectors[7], 3)
    assert best[0][0] == 7 and index.chunks[7].text == "chunk 7"
    assert stores.get(a.id, store_id).openai()["file_counts"]["completed"] == 1  # type: ignore[index]


def test_another_tenant_sees_nothing(parts) -> None:  # type: ignore[no-untyped-def]
    stores, _, _, b = parts
    store_id, file_id, _ = _filled(parts)
    for call in (
        lambda: stores.get(b.id, store_id),
        lambda: stores.index(b.id, store_id),
        lambda: stores.link(b.id, store_id, file_id),
        lambda: stores.delete(b.id, store_id),
        lambda: stores.detach(b.id, store_id, file_id),
    ):
        with pytest.raises(NotFound):
            call()
    assert stores.list(b.id, after=None, limit=10) == ([], False)


def test_a_segment_moved_to_another_place_does_not_open(parts, db: Database) -> None:  # type: ignore[no-untyped-def]
    stores, _, a, _ = parts
    store_id, _, _ = _filled(parts)
    with db.tenant_transaction(a.id) as session:
        first, second = session.execute(
            select(VectorChunkRow).order_by(VectorChunkRow.seq)
        ).scalars()
        session.execute(
            update(VectorChunkRow).where(VectorChunkRow.id == first.id).values(sealed=second.sealed)
        )
        session.execute(update(VectorChunkRow).where(VectorChunkRow.id == second.id).values(seq=0))
    with pytest.raises(DecryptionFailed):
        stores.index(a.id, store_id)


def test_deleting_the_file_removes_its_chunks_and_frees_the_quota(parts, db: Database) -> None:  # type: ignore[no-untyped-def]
    stores, files, a, _ = parts
    store_id, file_id, _ = _filled(parts)
    with db.tenant_transaction(a.id) as session:
        used = session.get(StorageUsageRow, a.id)
        assert used is not None and used.used_bytes > 300 * 8 * 4
    _, before = stores.index(a.id, store_id)
    files.delete(a.id, file_id)
    with db.tenant_transaction(a.id) as session:
        assert session.execute(select(VectorChunkRow)).first() is None
        assert session.get(StorageUsageRow, a.id).used_bytes == 0  # type: ignore[union-attr]
    _, after = stores.index(a.id, store_id)
    assert len(before.chunks) == 300 and len(after.chunks) == 0


def test_deleting_the_store_frees_the_quota(parts, db: Database) -> None:  # type: ignore[no-untyped-def]
    stores, _, a, _ = parts
    store_id, _, _ = _filled(parts)
    stores.delete(a.id, store_id)
    with db.tenant_transaction(a.id) as session:
        assert session.get(StorageUsageRow, a.id).used_bytes == 5  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        stores.get(a.id, store_id)


def test_the_quota_counts_chunks(parts) -> None:  # type: ignore[no-untyped-def]
    stores, files, a, _ = parts
    small = replace(a, quotas={"storage_bytes": 2000})
    store = stores.create(small, name="s", model="m", metadata={})
    upload = files.upload(small, "a.txt", "assistants", b"hi")
    stores.attach(a.id, store.id, upload.id, chunking=STATIC, attributes={})
    vectors = np.ones((100, 8), dtype=np.float32)
    with pytest.raises(PayloadTooLarge):
        stores.complete(small, store.id, upload.id, ["x"] * 100, vectors)


def test_rotation_rewraps_segments_without_re_embedding(parts) -> None:  # type: ignore[no-untyped-def]
    stores, _, a, _ = parts
    store_id, _, vectors = _filled(parts)
    keyring = stores.keyring
    assert keyring.versions_in_use(a.id) == {1: 3}  # the file's blob and two segments
    rotation = keyring.rotate(a.id)
    assert rotation.rewrapped == 3 and keyring.versions_in_use(a.id) == {2: 3}
    keyring.retire(a.id, 1)
    stores.cache.drop((a.id, store_id))
    _, index = stores.index(a.id, store_id)
    assert index.search(vectors[42], 1)[0][0] == 42


def test_segment_layout_round_trips() -> None:
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    back, texts = segments.decode(segments.encode(vectors, ["a", "b", "ç"]))
    assert np.array_equal(back, vectors) and texts == ["a", "b", "ç"]


def test_a_large_stores_graph_is_saved_sealed_and_reopened(parts, db: Database) -> None:  # type: ignore[no-untyped-def]
    stores, _, a, _ = parts
    stores.exact_below = 100  # 300 chunks: an HNSW graph
    store_id, _, vectors = _filled(parts)
    info, first = stores.index(a.id, store_id)
    assert first.approximate
    assert stores.graphs.load(a.id, store_id, info.generation, 300) is not None
    assert stores.graphs.load(a.id, store_id, info.generation + 1, 300) is None  # stale
    assert stores.keyring.versions_in_use(a.id) == {1: 4}  # file, two segments, the graph
    stores.cache.drop((a.id, store_id))
    _, again = stores.index(a.id, store_id)
    assert again.approximate and again.search(vectors[9], 1)[0][0] == 9
    stores.delete(a.id, store_id)
    assert stores.graphs.load(a.id, store_id, info.generation, 300) is None


def test_two_replicas_never_search_a_stale_index(parts, db: Database) -> None:  # type: ignore[no-untyped-def]
    """Replicas share the database and blobs, each with its own in-memory indexes: a change
    made through one moves the store's generation, and the other's next search reloads."""
    one, files, a, b = parts
    other = VectorStores(db, one.keyring)  # a second replica: its own cache
    store_id, file_id, vectors = _filled(parts)
    _, before = other.index(a.id, store_id)
    assert len(before.chunks) == 300
    upload = files.upload(a, "b.txt", "assistants", b"more")
    one.attach(a.id, store_id, upload.id, chunking=STATIC, attributes={})
    one.complete(a, store_id, upload.id, ["new"], vectors[:1])
    _, grown = other.index(a.id, store_id)
    assert len(grown.chunks) == 301
    one.detach(a.id, store_id, file_id)
    _, shrunk = other.index(a.id, store_id)
    assert [c.text for c in shrunk.chunks] == ["new"]
    with pytest.raises(NotFound):
        other.index(b.id, store_id)
