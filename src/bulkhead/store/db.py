"""Engine and transactions for the embedded SQLite default and for PostgreSQL.

On PostgreSQL every tenant-owned table has row-level security (migration
0004): a transaction sees a tenant's rows only after `tenant_transaction`
names that tenant, and every tenant's rows only in `platform_transaction`.
A plain `transaction` names nobody and so sees no tenant-owned row at all.
Row-level security does not bind a superuser or a BYPASSRLS role, so the
application refuses to start as one.  PostgreSQL text cannot hold U+0000,
and its driver fails on such a parameter with an error no caller expects, so
every statement refuses one on both backends alike, as bad input
(`InvalidRequest`): a tenant-chosen string with a NUL in it is a 400
wherever it reaches the database, never a 500.  Work done for a tenant's own request
runs in `tenant_scope`, where a platform transaction is refused on every
backend: the database is never the layer that a tenant route switches off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bulkhead.errors import ConfigError, InvalidRequest
from bulkhead.store.bounds import TenantBounds, with_bounds
from bulkhead.store.schema.records import add_postgresql_options

_PRIVILEGED = text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed audit batch survives power loss, not only a crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _refuse_nul(
    _conn: Any,
    _cursor: Any,
    _statement: str,
    parameters: Any,
    _context: Any,
    executemany: bool,
) -> None:
    """Refuse a statement with a text parameter holding U+0000 (PostgreSQL cannot store one)."""
    for row in parameters if executemany else (parameters,):
        values = row.values() if isinstance(row, Mapping) else (row or ())
        if any(isinstance(v, str) and "\x00" in v for v in values):
            raise InvalidRequest("Text may not contain NUL (U+0000) characters.")


class Database:
    """Owns the engine; hands out one transaction at a time per caller."""

    def __init__(self, url: str, bounds: TenantBounds | None = None):
        self.url = url
        # The operator's per-tenant bounds, handed to every session (`store.bounds`).
        self.bounds = bounds or TenantBounds()
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            add_postgresql_options()  # the schema's PostgreSQL-only options (records.py)
            self.engine = create_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)
            self._refuse_privileged_role()
        event.listen(self.engine, "before_cursor_execute", _refuse_nul)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Set while a tenant's own request is served (threads it starts inherit it).
        self._tenant_scope: ContextVar[bool] = ContextVar(f"tenant_scope_{id(self)}", default=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _refuse_privileged_role(self) -> None:
        with self.engine.connect() as connection:
            privileged = connection.execute(_PRIVILEGED).scalar()
        if privileged:
            self.engine.dispose()
            raise ConfigError(
                "BULKHEAD_DATABASE_URL connects as a superuser or BYPASSRLS role; row-level "
                "security would not apply: connect as a plain role, and give the owner's URL "
                "in BULKHEAD_DATABASE_ADMIN_URL for migrations"
            )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any error.

        It sets neither a tenant nor the platform flag, so on PostgreSQL it
        sees no tenant-owned rows; it is for tables without tenant data.
        """
        with self._sessions.begin() as session:
            yield with_bounds(session, self.bounds)

    @contextmanager
    def tenant_transaction(self, tenant_id: str) -> Iterator[Session]:
        """A transaction that sees only `tenant_id`'s rows (enforced by RLS on PostgreSQL)."""
        if not tenant_id:
            raise ValueError("a tenant transaction needs a tenant id")
        with self._sessions.begin() as session:
            if self.dialect == "postgresql":
                session.execute(
                    text("SELECT set_config('app.tenant_id', :t, true)"), {"t": tenant_id}
                )
            yield with_bounds(session, self.bounds)

    @contextmanager
    def tenant_scope(self) -> Iterator[None]:
        """Within it (and the threads it starts), `platform_transaction` is refused."""
        token = self._tenant_scope.set(True)
        try:
            yield
        finally:
            self._tenant_scope.reset(token)

    @contextmanager
    def platform_transaction(self) -> Iterator[Session]:
        """A transaction across tenants, for the platform's own (audited) paths."""
        if self._tenant_scope.get():
            # A programming error, not the client's: fail closed, with a server error.
            raise RuntimeError("a platform transaction inside a tenant's own request")
        with self._sessions.begin() as session:
            if self.dialect == "postgresql":
                session.execute(text("SELECT set_config('app.platform', 'on', true)"))
            yield with_bounds(session, self.bounds)

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Held by one process at a time among all that share this database.

        A PostgreSQL advisory lock, for work outside the database that every
        replica might start at once (a tenant's first key in the HSM); on
        SQLite, which serves one host, it is the caller's own lock that counts.
        """
        if self.dialect != "postgresql":
            yield
            return
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with self._sessions.begin() as session:
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            yield

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database(dialect={self.dialect!r})"
