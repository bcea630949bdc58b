"""Two first uploads of a tenant at once: the second is never refused a quota it has.

The race, made to happen every time: the second upload's first attempt runs
while the first upload's counter row is still uncommitted (so it finds no
row), and the first commits right after that attempt.
"""

from __future__ import annotations

import threading

from sqlalchemy import event, select

from bulkhead.domain import Tier
from bulkhead.store import Database, repo, upgrade
from bulkhead.store.files import reserve
from bulkhead.store.schema import StorageUsageRow
from tests.support.postgres import app_url, create_database, sqlalchemy_url


def test_concurrent_first_reservations_both_fit(pg_admin_url: str) -> None:
    admin = sqlalchemy_url(create_database(pg_admin_url, "bulkhead_reserve_race"))
    db = Database(app_url(admin))
    upgrade(db, admin)
    with db.platform_transaction() as session:
        tenant = repo.create_tenant(session, "racer", Tier.SHARED).id
    reserved, first_may_commit, first_done = threading.Event(), threading.Event(), threading.Event()
    armed = False

    def first() -> None:
        with db.tenant_transaction(tenant) as session:
            reserve(session, tenant, 10, 100)
            reserved.set()
            first_may_commit.wait(10)
        first_done.set()

    def after(conn: object, cursor: object, statement: str, *args: object) -> None:
        nonlocal armed
        if armed and statement.lstrip().upper().startswith("UPDATE STORAGE_USAGE"):
            armed = False  # the second's first attempt found no row: now the first commits
            first_may_commit.set()
            first_done.wait(10)

    event.listen(db.engine, "after_cursor_execute", after)
    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert reserved.wait(10)  # the first has made its row and added to it, uncommitted
        armed = True
        with db.tenant_transaction(tenant) as session:
            reserve(session, tenant, 20, 100)  # fits: 10 + 20 <= 100
    finally:
        event.remove(db.engine, "after_cursor_execute", after)
        first_may_commit.set()
        thread.join(10)
    with db.platform_transaction() as session:
        used = session.execute(
            select(StorageUsageRow.used_bytes).where(StorageUsageRow.tenant_id == tenant)
        ).scalar_one()
    db.dispose()
    assert used == 30
