"""Runs the Alembic migrations that ship inside the package.

On PostgreSQL the application's role must not own the tables (an owner may
switch row-level security off), so migrations may run through a separate
admin URL: the owner's.  After migrating, the application's role is granted
what it needs on every table, which also covers tables new migrations add.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from bulkhead.store.db import Database

_HERE = Path(__file__).parent / "migrations"
# The newest revision(s); a test keeps this equal to Alembic's heads.  A store
# already there is not migrated, so a gateway restart never imports Alembic
# (about 12 MB of resident memory it would keep for nothing).
HEADS = frozenset({"0042"})
# Serialises replicas that start together: concurrent GRANTs on one table can
# fail with "tuple concurrently updated", and migrations must not interleave.
_LOCK = text("SELECT pg_advisory_xact_lock(7316450221094537)")


def at_head(db: Database) -> bool:
    """Whether the store's recorded revisions are exactly `HEADS` (one cheap query)."""
    try:
        with db.engine.connect() as connection:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return frozenset(found) == HEADS
    except SQLAlchemyError:
        return False  # no store yet, or unreadable: let the migration say why


def _migrate(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK)
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    command.upgrade(config, "heads")


def _grant(connection: Connection, role: str) -> None:
    """Data access only: no DDL, no ownership, and the migration record read-only."""
    quote = connection.dialect.identifier_preparer.quote
    schema = quote(str(connection.execute(text("SELECT current_schema()")).scalar_one()))
    to = quote(role)
    for statement in (
        f"GRANT USAGE ON SCHEMA {schema} TO {to}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {to}",
        f"REVOKE INSERT, UPDATE, DELETE ON {schema}.alembic_version FROM {to}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {to}",
    ):
        connection.execute(text(statement))


def upgrade(db: Database, admin_url: str | None = None) -> None:
    """Bring the schema to the newest revision (idempotent).

    With `admin_url` (PostgreSQL only; ignored on SQLite) the migrations run
    as that role, and `db`'s own role is then granted data access to the tables.
    """
    if at_head(db):
        return
    if admin_url is None or db.dialect != "postgresql":
        with db.engine.begin() as connection:
            _migrate(connection)
        return
    with db.engine.connect() as connection:
        role = str(connection.execute(text("SELECT current_user")).scalar_one())
    admin = create_engine(admin_url, poolclass=NullPool)
    try:
        with admin.begin() as connection:
            _migrate(connection)
            if connection.execute(text("SELECT current_user")).scalar_one() != role:
                _grant(connection, role)
    finally:
        admin.dispose()
