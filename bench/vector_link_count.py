"""What counting one vector store's files costs on SQLite, by the query's terms.

    .venv/bin/python bench/vector_link_count.py [--links 100000] [--stores 10]

`store.vector_links.check_link_room` counts a store's links on every attach, under the
tenant's usage row, by tenant and store.  Before migration 0041 SQLite's planner took the
index on `tenant_id` alone and walked every link of every store of the tenant; on the
(tenant, store) index it walks the store's.  Prints the CPU a count takes with both terms
and by store alone (the primary key), for one store of `--stores` holding `--links` links
of one tenant together, and the plan SQLite chose.  No gateway: the query alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from sqlalchemy import func, insert, select, text

from bulkhead.store import Database, upgrade
from bulkhead.store.schema import VectorStoreFileRow, utcnow

ROUNDS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--stores", type=int, default=10)
    args = parser.parse_args()
    db = Database(f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    upgrade(db, None)
    now = utcnow()
    rows = [
        {
            "store_id": f"vs_{i % args.stores}",
            "file_id": f"file-{i}",
            "tenant_id": "t",
            "status": "completed",
            "chunking": "{}",
            "attributes": "{}",
            "usage_bytes": 0,
            "created_at": now,
        }
        for i in range(args.links)
    ]
    with db.engine.begin() as conn:
        conn.execute(text("PRAGMA foreign_keys=OFF"))  # links without their stores and files
        conn.execute(insert(VectorStoreFileRow), rows)
    count = select(func.count()).select_from(VectorStoreFileRow)
    by_store = count.where(VectorStoreFileRow.store_id == "vs_0")
    ways = {"tenant and store": by_store.where(VectorStoreFileRow.tenant_id == "t")}
    ways["store alone"] = by_store
    with db.engine.connect() as conn:
        for name, query in [*ways.items(), *ways.items()]:  # twice: the second warm
            start = time.process_time()
            for _ in range(ROUNDS):
                held = conn.execute(query).scalar_one()
            spent = (time.process_time() - start) / ROUNDS * 1000
            plan = conn.execute(
                text(
                    "EXPLAIN QUERY PLAN "
                    + str(query.compile(compile_kwargs={"literal_binds": True}))
                )
            ).all()
            print(f"{name:>16}: {held} links, {spent:.2f} ms CPU a count ({plan[-1][-1]})")
    db.dispose()


if __name__ == "__main__":
    main()
