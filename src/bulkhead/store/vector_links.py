"""How many files one vector store may hold: each attached file is a row, whatever its size.

The storage quota counts bytes, and an empty file costs none of it, so a tenant could attach
its 100,000 files to each of its 1,000 stores: 10^8 rows.  A store holds at most
`TenantBounds.vector_store_files` (`BULKHEAD_VECTOR_STORE_MAX_FILES`, 10,000 like OpenAI's)
attached files, failed and in-progress ones included; one more is refused with 409 naming
the setting, and a store created with more `file_ids` than that is refused whole, before
the store or any link is made.

`VectorStores.attach` counts under the tenant's storage-usage row, which it locks first
(`files.lock_usage`), the order every ingestion end and removal of links already takes: so
a tenant's attaches count one at a time, each seeing the links of those before, and none
waits on a lock the other order holds (opposite orders deadlocked on PostgreSQL,
`tests/unit/store/test_vectors_locks.py`).  The usage row exists whenever the tenant holds a
file (every upload makes it), and an attach without a file is "not found" anyway.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bulkhead.errors import Conflict
from bulkhead.store.bounds import bounds_of
from bulkhead.store.schema import VectorStoreFileRow

SETTING = "BULKHEAD_VECTOR_STORE_MAX_FILES"


def check_new_store(session: Session, file_ids: int) -> None:
    """Refuse (409) a store created with more files than one store may hold, before it is made."""
    bound = bounds_of(session).vector_store_files
    if file_ids > bound:
        raise Conflict(
            f"A vector store holds at most {bound} files ({SETTING}); the request names "
            f"{file_ids}: create the store with fewer and attach the rest elsewhere.",
            param="file_ids",
        )


def check_link_room(session: Session, tenant_id: str, store_id: str) -> None:
    """Refuse (409) a file more than the store may hold; the caller holds the usage row and
    found the store to be its tenant's in this transaction.

    Counted on the (tenant, store) index (0041): the walk is this store's links alone, not
    every link of every store of the tenant (`bench/vector_link_count.py`).
    """
    held = session.execute(
        select(func.count())
        .select_from(VectorStoreFileRow)
        .where(
            VectorStoreFileRow.tenant_id == tenant_id,
            VectorStoreFileRow.store_id == store_id,
        )
    ).scalar_one()
    if held >= bounds_of(session).vector_store_files:
        raise Conflict(
            f"The vector store holds {held} files, the most {SETTING} allows: "
            "remove some from it first.",
            param="file_id",
        )
