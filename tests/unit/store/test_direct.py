"""The audit writer's kept connection (`store.direct`), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.exc import IntegrityError

from bulkhead.store import Database, upgrade
from bulkhead.store.direct import DirectConnection
from bulkhead.store.schema import AuditEntryRow

ROW = {
    "idx": 0,
    "event_id": "0" * 32,
    "tenant_id": None,
    "target_tenant_id": None,
    "time": 1.0,
    "leaf_hash": bytes(32),
    "body": b"{}",
}


def count(db: Database) -> int:
    with db.platform_transaction() as session:
        return len(session.execute(select(AuditEntryRow.idx)).all())


def test_a_kept_connection_commits_rolls_back_and_raises_sqlalchemy_errors(db: Database) -> None:
    conn = DirectConnection(db)
    statement = conn.sql(insert(AuditEntryRow))
    try:
        conn.begin()
        conn.executemany(statement, [ROW])
        conn.commit()
        conn.begin()
        conn.executemany(statement, [ROW | {"idx": 1, "event_id": "1" * 32}])
        conn.rollback()
        conn.begin()
        with pytest.raises(IntegrityError):  # the driver's error, as a session raises it
            conn.executemany(statement, [ROW | {"idx": 2}])
        conn.discard()
        conn.begin()  # a fresh connection after the error
        conn.executemany(statement, [ROW | {"idx": 3, "event_id": "3" * 32}])
        conn.commit()
    finally:
        conn.close()
    assert count(db) == 2


def test_a_connection_dropped_meanwhile_is_replaced_at_the_next_begin(db: Database) -> None:
    conn = DirectConnection(db)
    try:
        conn.begin()
        conn.commit()
        kept: Any = conn._conn
        kept.driver_connection.close()  # as a server restart leaves it
        conn.begin()  # no error: a fresh connection, as the pool's ping gave a session
        assert conn._conn is not kept
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("db_urls", ["postgresql"], indirect=True)
def test_the_platform_flag_lasts_one_transaction(db: Database) -> None:
    conn = DirectConnection(db)
    setting = "SELECT current_setting('app.platform', true)"
    try:
        conn.begin(lock=1)
        assert conn.execute(setting).fetchone()[0] == "on"
        conn.commit()
        # Outside `begin` (never done by the writer) the flag is gone: it cannot leak
        # into the pool with the connection.
        assert conn.execute(setting).fetchone()[0] in ("", None)
        conn.rollback()
    finally:
        conn.close()


def test_sqlite_without_synchronous_full_is_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(db)

    def weaken(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(db.engine, "connect", weaken)
    db.engine.dispose()
    conn = DirectConnection(db)
    with pytest.raises(RuntimeError, match="not FULL"):
        conn.begin()
    db.dispose()
