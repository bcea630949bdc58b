"""The in-memory index of one vector store: exact search when small, HNSW (usearch) when large.

A store's plaintext vectors exist only here, in the memory of the replica
that serves it: built from its decrypted segments on first use
(`IndexCache.get`), kept under a byte bound with least-recently-used
eviction, and dropped when the store's generation moves on (a file attached
or removed through any replica) or the store goes.  An index holds one
store's chunks and nothing else, so a search can only ever return chunks of
the store (and so the tenant) it was loaded for.

Vectors are L2-normalised once, so the score is the cosine similarity (the
dot product), in [-1, 1].  Below `exact_below` chunks the search is one
matrix-vector product (exact; a few ms at 10k x 384); above it, an HNSW graph
(usearch, cosine metric) answers, and a search with a file filter that
leaves few rows scores those rows exactly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # numpy loads with the first vector store, usearch (and the tqdm it pulls in) with the
    # first large one: some 30 MB and 0.15 s a gateway that serves none never spends.
    import numpy as np
    import numpy.typing as npt
    from usearch.index import Index

    Matrix = npt.NDArray[np.float32]
EXACT_BELOW = 20_000
# HNSW build and search parameters: recall@10 >= 0.95 at 10k and 100k x 384
# (bench/vector_bench.py, docs/benchmarks.md).  A large store's graph is built once
# and saved sealed (`store.vector_graphs`): building costs minutes at 100k.
CONNECTIVITY = 16
EXPANSION_ADD = 64
EXPANSION_SEARCH = 256


def normalise(vectors: Matrix) -> Matrix:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


@dataclass(slots=True)
class Chunk:
    file_id: str
    text: str


@dataclass(slots=True)
class StoreIndex:
    """One store's chunks and vectors (row i of `vectors` is `chunks[i]`)."""

    chunks: list[Chunk]
    vectors: Matrix
    exact_below: int = EXACT_BELOW
    graph: Index | None = field(default=None, repr=False)  # a saved one, if any
    dimensions: int = 0

    def __post_init__(self) -> None:
        import numpy as np

        if len(self.chunks) != len(self.vectors):
            raise ValueError("one vector per chunk")
        self.vectors = normalise(self.vectors) if len(self.vectors) else self.vectors
        if self.graph is not None:
            # The stubs miss the setter usearch has; a restored graph keeps the default ef.
            self.graph.expansion_search = EXPANSION_SEARCH  # type: ignore[misc]
        elif len(self.chunks) >= self.exact_below:
            self.graph = build_graph(self.vectors)
        if self.graph is not None:  # the graph holds the vectors: keep one copy, not two
            self.dimensions = self.vectors.shape[1]
            self.vectors = np.zeros((0, self.dimensions), dtype=np.float32)
        else:
            self.dimensions = self.vectors.shape[1] if self.vectors.ndim == 2 else 0

    @property
    def approximate(self) -> bool:
        return self.graph is not None

    @property
    def nbytes(self) -> int:
        text = sum(len(c.text) + 64 for c in self.chunks)
        graph = int(self.graph.memory_usage) if self.graph is not None else 0
        return int(self.vectors.nbytes) + text + graph

    def search(
        self, query: Matrix, k: int, allowed: Callable[[str], bool] | None = None
    ) -> list[tuple[int, float]]:
        """(row, score) of the best `k` chunks, best first; `allowed` filters by file id."""
        import numpy as np

        if not self.chunks or k <= 0:
            return []
        q = normalise(query.reshape(1, -1))[0]
        if allowed is not None:
            rows = np.fromiter(
                (i for i, c in enumerate(self.chunks) if allowed(c.file_id)), dtype=np.int64
            )
            if self.graph is None:
                return exact(self.vectors, q, k, rows)
            if len(rows) == 0:
                return []
            # The allowed rows' vectors, from the graph's own copy, scored exactly.
            picked = np.asarray(self.graph.get(rows.astype(np.uint64)), dtype=np.float32)
            return [(int(rows[i]), score) for i, score in exact(picked, q, k)]
        if self.graph is None:
            return exact(self.vectors, q, k)
        found = self.graph.search(q, k, exact=False)
        keys, distances = np.asarray(found.keys), np.asarray(found.distances)
        return [(int(key), 1.0 - float(d)) for key, d in zip(keys, distances, strict=True)]


def build_graph(vectors: Matrix) -> Index:
    import numpy as np
    from usearch.index import Index

    graph = Index(
        ndim=vectors.shape[1],
        metric="cos",
        dtype="f32",
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )
    graph.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=0)  # every core
    return graph


def exact(
    vectors: Matrix, q: Matrix, k: int, rows: npt.NDArray[np.int64] | None = None
) -> list[tuple[int, float]]:
    """The exact top `k` by dot product (of normalised vectors), over `rows` if given."""
    import numpy as np

    if rows is not None:
        if len(rows) == 0:
            return []
        scores = vectors[rows] @ q
    else:
        scores = vectors @ q
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    ids = rows[top] if rows is not None else top
    return [(int(i), float(scores[j])) for i, j in zip(ids, top, strict=True)]


Key = tuple[str, str]  # (tenant id, store id)


class IndexCache:
    """Loaded indexes by (tenant, store) and generation, within `max_bytes` (LRU).

    `load` is called outside the cache's lock (decrypting a large store takes
    a while) but under the key's own: concurrent first searches of a cold
    store wait for one load rather than each decrypting and building its own
    copy (at 100k chunks, minutes of CPU and hundreds of MB each).  A load
    that fails is not remembered; the next search tries again.
    """

    def __init__(self, max_bytes: int = 512 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, tuple[int, StoreIndex]] = OrderedDict()
        self._loading: dict[Key, threading.Lock] = {}
        self.loads = 0

    def _current(self, key: Key, generation: int) -> StoreIndex | None:
        found = self._entries.get(key)
        if found is not None and found[0] == generation:
            self._entries.move_to_end(key)
            return found[1]
        return None

    def peek(self, key: Key, generation: int) -> StoreIndex | None:
        """The index of this generation if it is loaded; never loads."""
        with self._lock:
            return self._current(key, generation)

    def get(self, key: Key, generation: int, load: Callable[[], StoreIndex]) -> StoreIndex:
        with self._lock:
            found = self._current(key, generation)
            if found is not None:
                return found
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                found = self._current(key, generation)
                if found is not None:
                    return found
            try:
                index = load()
            except BaseException:
                with self._lock:
                    self._done(key, gate)
                raise
            with self._lock:
                self.loads += 1
                self._entries[key] = (generation, index)
                self._entries.move_to_end(key)
                self._evict()
                self._done(key, gate)
            return index

    def _done(self, key: Key, gate: threading.Lock) -> None:
        if self._loading.get(key) is gate:
            del self._loading[key]

    def _evict(self) -> None:
        total = sum(index.nbytes for _, index in self._entries.values())
        while total > self.max_bytes and len(self._entries) > 1:
            _, (_, index) = self._entries.popitem(last=False)
            total -= index.nbytes

    def drop(self, key: Key) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def drop_tenant(self, tenant_id: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == tenant_id]:
                del self._entries[key]

    def keep_tenants(self, tenant_ids: Collection[str]) -> None:
        """Drop the indexes of tenants that are gone (deleted: their KEKs shredded), so no
        plaintext of theirs outlives a catalog reload on any replica."""
        kept = frozenset(tenant_ids)
        with self._lock:
            for key in [k for k in self._entries if k[0] not in kept]:
                del self._entries[key]

    def loaded(self) -> Sequence[Key]:
        with self._lock:
            return list(self._entries)
