"""Migrations: idempotent, and creating exactly the tables the SQLAlchemy models describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from bulkhead.store import Database, migrate, upgrade
from bulkhead.store.schema import NAMING, Base


def differences(db: Database, metadata: sa.MetaData) -> list[Any]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def head_revisions() -> set[str]:
    # Features may branch from one revision; the application runs `upgrade heads`.
    scripts = ScriptDirectory(str(Path(migrate.__file__).parent / "migrations"))
    heads = set(scripts.get_heads())
    assert heads
    return heads


def test_upgrade_is_idempotent(db_url: str, db_admin_url: str | None) -> None:
    first = Database(db_url)
    upgrade(first, db_admin_url)
    upgrade(first, db_admin_url)
    first.dispose()
    again = Database(db_url)  # Another process starting on the same store.
    upgrade(again, db_admin_url)
    with again.engine.connect() as connection:
        revisions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        versions = connection.execute(sa.text("SELECT id, version FROM catalog_version")).all()
    again.dispose()
    assert sorted(r[0] for r in revisions) == sorted(head_revisions())
    assert [tuple(r) for r in versions] == [(1, 1)]


def test_migrations_match_the_models(db: Database) -> None:
    assert differences(db, Base.metadata) == []


def test_comparison_notices_drift(db: Database) -> None:
    # Guards the test above against comparing nothing: a changed model must show up.
    drifted = sa.MetaData(naming_convention=NAMING)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["tenants"].append_column(sa.Column("region", sa.String(16)))
    drifted.tables["api_keys"].c["name"].type = sa.String(64)
    kinds = {
        diff[0] if isinstance(diff, tuple) else diff[0][0] for diff in differences(db, drifted)
    }
    assert "add_column" in kinds and "modify_type" in kinds


def test_heads_constant_matches_the_scripts() -> None:
    # `upgrade` skips Alembic when the store is at `HEADS`: a new migration must move it.
    assert frozenset(head_revisions()) == migrate.HEADS
    assert len(migrate.HEADS) == 1, "merge the branches into one head"


def test_a_store_at_head_is_not_migrated_again(db_url: str, db_admin_url: str | None) -> None:
    first = Database(db_url)
    upgrade(first, db_admin_url)
    assert migrate.at_head(first)
    statements: list[str] = []
    sa.event.listen(first.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    upgrade(first, db_admin_url)
    first.dispose()
    assert statements == ["SELECT version_num FROM alembic_version"]


def _upgrade_to(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def test_0020_makes_stored_key_limits_a_floor_and_tenants_onboarded(
    db_url: str, db_admin_url: str | None
) -> None:
    """Who set a key's limits so far is unknown: they become its floor (fail closed), and every
    existing tenant counts as having its first admin, so later credentials need a grant."""
    owner = db_admin_url or db_url
    _upgrade_to(owner, "0017")
    engine = sa.create_engine(owner)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT set_config('app.platform', 'on', true)"))
        connection.execute(
            sa.text(
                "INSERT INTO tenants (id, name, tier, status, quotas, config, attributes, "
                "created_at, updated_at) VALUES ('ten_1', 'old', 'shared', 'active', '{}', '{}', "
                "'{}', :now, :now)"
            ),
            {"now": "2024-01-01 00:00:00+00:00"},
        )
        connection.execute(
            sa.text(
                "INSERT INTO principals (id, tenant_id, scope, name, kind, roles, created_at) "
                "VALUES ('prn_1', 'ten_1', 'ten_1', 'svc', 'service', '[\"end_user\"]', :now)"
            ),
            {"now": "2024-01-01 00:00:00+00:00"},
        )
        connection.execute(
            sa.text(
                "INSERT INTO api_keys (id, tenant_id, principal_id, role, secret_hash, name, "
                "limits, created_at) VALUES ('key1', 'ten_1', 'prn_1', 'end_user', :hash, '', "
                "'{\"requests_per_minute\": 7}', :now)"
            ),
            {"hash": b"\0" * 32, "now": "2024-01-01 00:00:00+00:00"},
        )
    engine.dispose()
    db = Database(db_url)
    upgrade(db, db_admin_url)
    from bulkhead.store import repo, selfservice

    with db.platform_transaction() as session:
        (key,) = repo.list_keys(session, "ten_1")
        assert dict(key.limits_floor or {}) == {"requests_per_minute": 7}
        assert not selfservice.bootstrap_open(session, "old")
    db.dispose()


def test_the_audit_partial_index_has_its_condition_on_both_backends() -> None:
    """The PostgreSQL option is added when a PostgreSQL store opens (not at import: a SQLite
    gateway never loads that dialect); both compile migration 0040's partial index."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex

    from bulkhead.store.schema.records import TARGET_INDEX, add_postgresql_options

    add_postgresql_options()
    want = (
        "CREATE INDEX ix_audit_entries_target_tenant_id ON audit_entries (target_tenant_id) "
        "WHERE target_tenant_id IS NOT NULL"
    )
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        assert str(CreateIndex(TARGET_INDEX).compile(dialect=dialect)) == want
