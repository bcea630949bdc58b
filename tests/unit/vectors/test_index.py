"""The in-memory index: exact below the bound, HNSW above it, and the LRU cache."""

from __future__ import annotations

import numpy as np

from bulkhead.vectors.index import Chunk, IndexCache, StoreIndex, exact


def _index(n: int, dim: int = 16, exact_below: int = 1000, seed: int = 0) -> StoreIndex:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return StoreIndex([Chunk(f"file-{i % 3}", f"t{i}") for i in range(n)], vectors, exact_below)


def test_exact_search_finds_the_vector_itself_first() -> None:
    index = _index(200)
    assert not index.approximate
    found = index.search(index.vectors[17] * 3, 5)
    assert found[0][0] == 17 and abs(found[0][1] - 1.0) < 1e-5
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)


def test_a_large_store_uses_hnsw_with_high_recall() -> None:
    index = _index(3000, exact_below=1000)
    flat = _index(3000, exact_below=10_000)
    assert index.approximate and not flat.approximate
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(50):
        q = rng.standard_normal(16).astype(np.float32)
        q /= np.linalg.norm(q)
        truth = {i for i, _ in exact(flat.vectors, q, 10)}
        hits += len(truth & {i for i, _ in index.search(q, 10)})
    assert hits / 500 >= 0.95


def test_a_filter_scores_only_the_allowed_files() -> None:
    for exact_below in (1000, 10_000):  # from the graph's copy of the vectors, and without one
        index = _index(3000, exact_below=exact_below)
        q = np.random.default_rng(0).standard_normal((3000, 16)).astype(np.float32)[4]
        found = index.search(q, 20, allowed=lambda f: f == "file-1")
        assert found[0][0] == 4 and abs(found[0][1] - 1.0) < 1e-5
        assert len(found) == 20 and all(index.chunks[i].file_id == "file-1" for i, _ in found)
        assert index.search(q, 5, allowed=lambda f: False) == []


def test_a_graph_keeps_the_only_copy_of_the_vectors() -> None:
    index = _index(3000, exact_below=1000)
    assert index.approximate and index.vectors.shape == (0, 16) and index.dimensions == 16


def test_an_empty_store_finds_nothing() -> None:
    index = StoreIndex([], np.zeros((0, 1), dtype=np.float32))
    assert index.search(np.ones(4, dtype=np.float32), 5) == []


def test_the_cache_reloads_a_new_generation_and_evicts_the_oldest() -> None:
    one = _index(100)
    cache = IndexCache(max_bytes=int(one.nbytes * 2.5))
    loads: list[str] = []

    def load(name: str) -> StoreIndex:
        loads.append(name)
        return _index(100)

    cache.get(("t", "a"), 1, lambda: load("a"))
    cache.get(("t", "a"), 1, lambda: load("a"))
    cache.get(("t", "a"), 2, lambda: load("a2"))
    cache.get(("t", "b"), 1, lambda: load("b"))
    cache.get(("u", "c"), 1, lambda: load("c"))  # three do not fit: "a" (least recent) goes
    assert loads == ["a", "a2", "b", "c"]
    assert set(cache.loaded()) == {("t", "b"), ("u", "c")}
    cache.drop_tenant("t")
    assert cache.loaded() == [("u", "c")]


def test_the_indexes_of_tenants_gone_are_dropped() -> None:
    cache = IndexCache()
    for key in (("t", "a"), ("u", "b"), ("v", "c")):
        cache.get(key, 1, lambda: _index(10))
    cache.keep_tenants({"u"})
    assert cache.loaded() == [("u", "b")]
