"""Vector stores on this CPU: ingest, search latency, recall@10 against exact search, cold load.

    python bench/vector_bench.py [--sizes 10000,100000] [--dim 384] [--queries 200]

For each size: `n` synthetic 384-dimension vectors shaped like sentence
embeddings (L2-normalised points around 2,000 topic centres, so neighbours
are meaningful rather than the uniform noise no index is built for), stored
through `store.vectors.VectorStores` on SQLite in a temporary directory:

- ingest: chunks/s of `complete` (seal segments under the tenant's KEK, count
  the quota, write the rows); the embedding itself is the model's cost, not
  the store's, and is left out;
- cold load: seconds to read, decrypt and index a store nobody has searched
  (`VectorStores._load`): the first time with the HNSW build (and its sealed
  save), then from the saved graph, and for exact search (no graph);
- search: p50/p99 ms of one query (the query vector given, so the embedding
  call is left out), exact (numpy) and HNSW (usearch), and HNSW's recall@10
  against exact search over `--queries` queries near stored points.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from bulkhead.crypto import Kek, LocalKms, MemoryKekStore  # noqa: E402
from bulkhead.domain import Tier  # noqa: E402
from bulkhead.store import Database, upgrade  # noqa: E402
from bulkhead.store.blobs import BlobStore  # noqa: E402
from bulkhead.store.files import FileService  # noqa: E402
from bulkhead.store.keyring import TenantKeyring  # noqa: E402
from bulkhead.store.repo.tenants import create_tenant  # noqa: E402
from bulkhead.store.sealed import SealedColumns  # noqa: E402
from bulkhead.store.vectors import VectorStores  # noqa: E402
from bulkhead.vectors.index import StoreIndex, normalise  # noqa: E402

TEXT = "a chunk of a document, about as long as a short paragraph of a report. " * 4


def corpus(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    points = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim))
    return normalise(points.astype(np.float32))


def queries(data: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = data[rng.integers(0, len(data), count)]
    return normalise(picked + 0.05 * rng.standard_normal(picked.shape).astype(np.float32))


def timed(index: StoreIndex, qs: np.ndarray, k: int = 10) -> tuple[list[list[int]], list[float]]:
    found, times = [], []
    for q in qs:
        start = time.perf_counter()
        hits = index.search(q, k)
        times.append((time.perf_counter() - start) * 1000)
        found.append([i for i, _ in hits])
    return found, times


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


def bench(n: int, dim: int, count: int, root: Path) -> dict[str, float]:
    db = Database(f"sqlite:///{root}/bench-{n}.db")
    upgrade(db, None)
    keyring = TenantKeyring(
        LocalKms(MemoryKekStore(), Kek.generate()), BlobStore(root), holders=(SealedColumns(db),)
    )
    with db.platform_transaction() as session:
        tenant = create_tenant(session, f"bench{n}", Tier.DEDICATED)
    stores = VectorStores(db, keyring)
    files = FileService(db, keyring, max_file_bytes=1 << 20)
    data = corpus(n, dim)
    store = stores.create(tenant, name="bench", model="minilm-embed", metadata={})
    upload = files.upload(tenant, "bench.txt", "assistants", b"x")
    stores.attach(tenant.id, store.id, upload.id, chunking={"type": "auto"}, attributes={})
    start = time.perf_counter()
    stores.complete(tenant, store.id, upload.id, [TEXT] * n, data)
    ingest = n / (time.perf_counter() - start)

    start = time.perf_counter()
    stores.exact_below = 0  # the HNSW graph, built on the first load and saved sealed
    stores._load(tenant.id, store.id)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    graph = stores._load(tenant.id, store.id)  # the saved graph, decrypted and reopened
    cold_saved = time.perf_counter() - start
    assert graph.graph is not None
    stores.exact_below = n + 1
    start = time.perf_counter()
    flat = stores._load(tenant.id, store.id)
    cold_exact = time.perf_counter() - start

    qs = queries(data, count)
    truth, exact_ms = timed(flat, qs)
    found, hnsw_ms = timed(graph, qs)
    recall = statistics.mean(len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True))
    db.dispose()
    return {
        "ingest_chunks_s": ingest,
        "cold_load_hnsw_build_s": cold,
        "cold_load_hnsw_saved_s": cold_saved,
        "cold_load_exact_s": cold_exact,
        "exact_p50_ms": pct(exact_ms, 50),
        "exact_p99_ms": pct(exact_ms, 99),
        "hnsw_p50_ms": pct(hnsw_ms, 50),
        "hnsw_p99_ms": pct(hnsw_ms, 99),
        "recall_at_10": recall,
        "resident_mb": graph.nbytes / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            found = bench(n, args.dim, args.queries, Path(tmp))
            line = "  ".join(f"{k}={v:.3f}" for k, v in found.items())
            print(f"vectors n={n} dim={args.dim}: {line}", flush=True)


if __name__ == "__main__":
    main()
