"""Review of issue 18's vector stores as an attacker: each test failed before its fix."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from bulkhead.errors import InvalidRequest
from bulkhead.vectors.filters import parse_filters
from bulkhead.vectors.index import Chunk, IndexCache, StoreIndex


def _leaf(i: int) -> dict[str, Any]:
    return {"type": "eq", "key": "k", "value": i}


def test_a_filter_of_a_million_comparisons_is_refused() -> None:
    """32 filters a level, 4 levels deep was ~1M comparisons, each run per file on the loop."""
    tree: dict[str, Any] = {"type": "or", "filters": [_leaf(i) for i in range(32)]}
    for _ in range(3):
        tree = {"type": "and", "filters": [tree] * 32}
    with pytest.raises(InvalidRequest) as caught:
        parse_filters(tree)
    assert caught.value.param == "filters"
    many = {"type": "in", "key": "k", "value": list(range(100_000))}
    with pytest.raises(InvalidRequest):
        parse_filters(many)
    # What a client writes by hand still passes.
    parse_filters({"type": "and", "filters": [_leaf(i) for i in range(8)]})
    parse_filters({"type": "in", "key": "k", "value": list(range(64))})


def test_concurrent_first_searches_of_a_cold_store_load_it_once() -> None:
    """Every concurrent search of a cold store decrypted and built its own index (minutes and
    hundreds of MB each at 100k chunks): N requests held N worker threads and N copies."""
    cache = IndexCache()
    started = threading.Barrier(8, timeout=5)

    def load() -> StoreIndex:
        time.sleep(0.2)
        vectors = np.ones((4, 8), dtype=np.float32)
        return StoreIndex([Chunk("file-1", "t")] * 4, vectors)

    def search() -> None:
        started.wait()
        cache.get(("t1", "vs_1"), 3, load)

    threads = [threading.Thread(target=search) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert cache.loads == 1


def test_a_failed_load_is_not_remembered() -> None:
    cache = IndexCache()

    def bad() -> StoreIndex:
        raise RuntimeError("kms down")

    with pytest.raises(RuntimeError):
        cache.get(("t1", "vs_1"), 1, bad)
    index = cache.get(("t1", "vs_1"), 1, lambda: StoreIndex([], np.zeros((0, 1), np.float32)))
    assert index.chunks == []


def test_one_tenant_ingests_a_bounded_number_of_files_at_once() -> None:
    """Each attach started its own ingestion task, reading, decrypting and tokenising the whole
    file at once: a tenant attaching many large files held them all in memory together."""
    from bulkhead.vectors import service as vs

    running, peak = 0, 0

    class Files:
        def content(self, tenant_id: str, file_id: str) -> bytes:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            time.sleep(0.05)
            running -= 1
            return b"some text"

    class Stores:
        def complete(self, *args: object) -> None:
            pass

        def fail(self, *args: object) -> None:
            pass

    async def embed(origin: object, model: str, texts: list[str]) -> Any:
        return np.ones((len(texts), 4), dtype=np.float32)

    class Tenant:
        id = "t1"

    class Store:
        id, model = "vs_1", "m"

    class Link:
        def __init__(self, i: int):
            self.file_id = f"file-{i}"

    async def run() -> None:
        service = vs.VectorService(Stores(), Files(), embed)  # type: ignore[arg-type]
        for i in range(20):
            service.ingest_later({}, Tenant(), Store(), Link(i), vs.Chunking(100, 0))  # type: ignore[arg-type]
        await service.settle()

    asyncio.run(run())
    assert 1 <= peak <= vs.INGEST_PER_TENANT


@pytest.mark.serial
def test_cold_store_loads_do_not_hold_the_shared_worker_threads() -> None:
    """A cold load (decrypt, and at 20k+ chunks an HNSW build: minutes) ran on asyncio's default
    executor, which sign-in by OIDC and the control plane share (6 threads on 2 cores): a tenant
    searching a few large stores after moving their generation held every one of them."""
    from bulkhead.store.vector_info import StoreInfo
    from bulkhead.vectors import service as vs
    from bulkhead.vectors.request import Search

    release = threading.Event()
    info = StoreInfo("vs_1", "", "m", 8, {}, 1, None, None)  # type: ignore[arg-type]

    class Stores:
        def lookup(self, tenant_id: str, store_id: str) -> tuple[StoreInfo, None]:
            return info, None

        def index(self, tenant_id: str, store_id: str) -> tuple[StoreInfo, StoreIndex]:
            release.wait(10)  # a long build
            return info, StoreIndex([], np.zeros((0, 8), np.float32))

    async def embed(origin: object, model: str, texts: list[str]) -> Any:
        return np.ones((len(texts), 8), dtype=np.float32)

    class Tenant:
        id = "t1"

    async def run() -> float:
        service = vs.VectorService(Stores(), None, embed)  # type: ignore[arg-type]
        ask = Search(("q",), 5, 0.0, None)
        searches = [
            asyncio.create_task(service.search({}, Tenant(), f"vs_{i}", ask))  # type: ignore[arg-type]
            for i in range(40)
        ]
        await asyncio.sleep(0.3)
        start = time.monotonic()
        await asyncio.wait_for(asyncio.to_thread(lambda: None), 5)
        waited = time.monotonic() - start
        release.set()
        await asyncio.gather(*searches, return_exceptions=True)
        return waited

    assert asyncio.run(run()) < 0.5
