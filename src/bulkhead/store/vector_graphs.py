"""A large store's HNSW graph, kept sealed in the blob store so a cold load need not rebuild it.

Building the graph of 100,000 vectors takes minutes on two cores; opening a
saved one takes a fraction of a second (docs/benchmarks.md).  The graph
holds the vectors themselves, so it is sealed like them: envelope-encrypted
under the tenant's KEK with associated data (tenant, "vector-index", store
id), as a blob — so rotation re-wraps it and tenant deletion drops it like
any other blob (`store.sealed.BlobHolder`).  Its plaintext starts with the
store's generation and chunk count: a graph of another generation is stale,
and is rebuilt (and saved again) rather than used.  It is derived data
(rebuilt from the chunks whenever it is missing or stale), so it is not
counted against the storage quota.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from bulkhead.crypto import DecryptionFailed, Kms, decrypt, encrypt
from bulkhead.errors import NotFound
from bulkhead.store.blobs import BlobStore

if TYPE_CHECKING:  # loaded with the first saved graph (`vectors.index.build_graph`)
    from usearch.index import Index

KIND = "vector-index"
_HEAD = struct.Struct(">QQ")  # generation, chunk count


class GraphStore:
    def __init__(self, blobs: BlobStore, kms: Kms):
        self.blobs, self.kms = blobs, kms

    def load(self, tenant_id: str, store_id: str, generation: int, count: int) -> Index | None:
        """The saved graph of exactly this generation and size, or None."""
        try:
            sealed = self.blobs.get(tenant_id, KIND, store_id)
            plain = decrypt(
                sealed, tenant_id=tenant_id, kind=KIND, object_id=store_id, kms=self.kms
            )
        except (NotFound, DecryptionFailed):
            return None
        if len(plain) < _HEAD.size or _HEAD.unpack_from(plain) != (generation, count):
            return None
        from usearch.index import Index

        graph = Index.restore(memoryview(plain)[_HEAD.size :])
        if graph is None or len(graph) != count:
            return None
        return graph

    def save(self, tenant_id: str, store_id: str, generation: int, graph: Index) -> None:
        body = graph.save()
        assert body is not None  # with no path, usearch returns the bytes
        plain = _HEAD.pack(generation, len(graph)) + bytes(body)
        sealed = encrypt(plain, tenant_id=tenant_id, kind=KIND, object_id=store_id, kms=self.kms)
        self.blobs.put(tenant_id, KIND, store_id, sealed)

    def drop(self, tenant_id: str, store_id: str) -> None:
        self.blobs.delete(tenant_id, KIND, store_id)
