"""Migration 0040: the audit log keeps every leaf and every guarantee with fewer index pages.

On SQLite `audit_entries` is rebuilt with `idx` as the rowid; on both
backends the target-tenant index becomes partial.  A log written before must
come through unchanged (same indices, ids, hashes and bodies), still verify,
go on from where it was, and still refuse a second leaf at a taken index.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bulkhead.audit import append as appending
from bulkhead.audit.events import AuditEvent
from bulkhead.audit.hashing import leaf_hash
from bulkhead.store import Database, migrate, upgrade
from bulkhead.store.schema import AuditEntryRow


def _upgrade_to(url: str, admin_url: str | None, revision: str) -> None:
    """The store at `revision`, its tables open to the application's role (as `upgrade` does)."""
    from alembic import command
    from alembic.config import Config

    role = None
    if admin_url is not None:  # PostgreSQL
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            role = str(connection.execute(sa.text("SELECT current_user")).scalar_one())
        engine.dispose()
    owner = sa.create_engine(admin_url or url)
    with owner.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        if role is not None:
            migrate._grant(connection, role)
    owner.dispose()


def _event(n: int, target: str | None = None) -> AuditEvent:
    return AuditEvent(
        action="v1:chat" if target is None else "admin:tenant.update",
        outcome="success",
        status=200,
        tenant_id="ten_a" if target is None else None,
        target_tenant=target,
        request_id=f"req_{n}",
    )


def _rows(db: Database) -> list[tuple[int, str, bytes, bytes, str | None, str | None]]:
    with db.platform_transaction() as session:
        found = session.execute(
            sa.select(
                AuditEntryRow.idx,
                AuditEntryRow.event_id,
                AuditEntryRow.leaf_hash,
                AuditEntryRow.body,
                AuditEntryRow.tenant_id,
                AuditEntryRow.target_tenant_id,
            ).order_by(AuditEntryRow.idx)
        ).all()
    return [(r[0], r[1], bytes(r[2]), bytes(r[3]), r[4], r[5]) for r in found]


def test_a_log_written_before_0040_comes_through_whole(
    db_url: str, db_admin_url: str | None
) -> None:
    _upgrade_to(db_url, db_admin_url, "0039")
    db = Database(db_url)
    first = [_event(0), _event(1, target="ten_b"), _event(2), _event(3, target="ten_a")]
    appending.append_batch(db, first)
    before = _rows(db)
    db.dispose()

    db = Database(db_url)
    upgrade(db, db_admin_url)
    after = _rows(db)
    assert after == before
    # Each leaf still links to the one before it, and hashes to what is stored.
    prev = appending.GENESIS
    for idx, _, stored_hash, body, _, _ in after:
        entry = json.loads(body)
        assert (entry["idx"], base64.b64decode(entry["prev"])) == (idx, prev)
        assert leaf_hash(body) == stored_hash
        prev = stored_hash
    # The log goes on from its tail, and a taken index is still refused.
    assert appending.append_batch(db, [_event(4)]) == len(first)
    with pytest.raises(IntegrityError), db.platform_transaction() as session:
        session.execute(sa.insert(AuditEntryRow), [{**_insertable(after[0]), "event_id": "f" * 32}])
    db.dispose()


def _insertable(row: tuple[int, str, bytes, bytes, str | None, str | None]) -> dict[str, object]:
    idx, event_id, digest, body, tenant, target = row
    return {
        "idx": idx,
        "event_id": event_id,
        "leaf_hash": digest,
        "body": body,
        "tenant_id": tenant,
        "target_tenant_id": target,
        "time": 0.0,
    }


def test_sqlite_idx_is_the_rowid_and_the_target_index_is_partial(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'lean.db'}")
    upgrade(db)
    with db.engine.connect() as connection:
        indexes = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master "
            "WHERE type = 'index' AND tbl_name = 'audit_entries'"
        ).all()
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT idx FROM audit_entries "
            "WHERE tenant_id = 'ten_a' OR target_tenant_id = 'ten_a'"
        ).all()
    names = {name for name, _ in indexes}
    # One automatic index (event_id's unique constraint): none for the primary key.
    assert names == {
        "sqlite_autoindex_audit_entries_1",
        "ix_audit_entries_tenant_id",
        "ix_audit_entries_target_tenant_id",
    }
    target_sql = dict(indexes)["ix_audit_entries_target_tenant_id"]
    assert target_sql.endswith("WHERE target_tenant_id IS NOT NULL")
    assert any("ix_audit_entries_target_tenant_id" in str(step) for step in plan)
    db.dispose()


def test_sqlite_downgrade_keeps_the_log(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'down.db'}"
    db = Database(url)
    upgrade(db)
    appending.append_batch(db, [_event(0), _event(1, target="ten_b")])
    before = _rows(db)
    db.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
        config.attributes["connection"] = connection
        command.downgrade(config, "0039")
        keys = connection.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'sqlite_autoindex_audit_entries%'"
        ).scalar()
    engine.dispose()
    assert keys == 2  # the key's own index is back beside event_id's
    db = Database(url)
    assert _rows(db) == before
    db.dispose()
