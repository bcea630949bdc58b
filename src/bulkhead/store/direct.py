"""One database connection held by a hot path, with plain DBAPI calls on statements compiled once.

The audit writer commits a transaction per batch, often one per request; an
ORM session per batch (a pool checkout, its ping on PostgreSQL, SQLAlchemy's
statement machinery, a savepoint) cost several times the commit itself.  A
`DirectConnection` keeps one connection from the engine's pool for as long as
it works, so the engine's own set-up still applies to it (SQLite: WAL and
`synchronous=FULL`, checked here again; PostgreSQL: the plain role that
row-level security binds), runs statements written with SQLAlchemy but
compiled once per dialect to the driver's own SQL (`sql`), and is thrown away
on any error, so the next transaction starts on a fresh connection.

Every transaction is a platform transaction (`begin`): on PostgreSQL it sets
`app.platform` for the transaction alone, as `Database.platform_transaction`
does, and may take a transaction-scoped advisory lock in the same round trip.
The engine's guard against U+0000 in text parameters does not see these
calls: their callers pass only values they have checked (ids by pattern).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

from bulkhead.store.db import Database

Row = Mapping[str, Any]

_DIALECTS: dict[str, Dialect] = {
    # Named parameters on both: `:name` for sqlite3, `%(name)s` for psycopg.
    "sqlite": sqlite.dialect(paramstyle="named"),
}
_SQLITE_FULL = 2  # PRAGMA synchronous: FULL


def compile_sql(statement: ClauseElement, dialect: str) -> str:
    """`statement` as the driver's SQL, with named parameters (compile once, run many times)."""
    return str(statement.compile(dialect=_dialect(dialect)))


def _dialect(name: str) -> Dialect:
    found = _DIALECTS.get(name)
    if found is None and name == "postgresql":
        # Loaded on PostgreSQL alone: the dialect's modules cost a SQLite gateway 0.05 s.
        from sqlalchemy.dialects.postgresql import psycopg

        found = _DIALECTS[name] = psycopg.dialect()  # type: ignore[no-untyped-call]
    if found is None:
        raise KeyError(name)
    return found


class DirectConnection:
    """A connection from `db`'s pool, kept across transactions; one thread uses it at a time.

    The driver's errors come out as SQLAlchemy's (`IntegrityError`,
    `OperationalError`, ...), as they do from a session, without parameters.
    """

    def __init__(self, db: Database):
        self.dialect = db.dialect
        self._engine = db.engine
        self._error: type[Exception] = db.engine.dialect.loaded_dbapi.Error
        self._conn: Any = None  # the pool's proxy of the DBAPI connection, while it works
        self._cursor: Any = None

    def sql(self, statement: ClauseElement) -> str:
        """The driver's SQL for `statement` on this connection's database."""
        return compile_sql(statement, self.dialect)

    def _translate(self, exc: Exception, sql: str | None) -> BaseException:
        if not isinstance(exc, self._error):
            return exc
        return DBAPIError.instance(sql, None, exc, self._error, hide_parameters=True)

    def _open(self) -> Any:
        conn = self._engine.raw_connection()
        try:
            cursor = conn.cursor()
            if self.dialect == "sqlite":
                level = cursor.execute("PRAGMA synchronous").fetchone()[0]
                if level != _SQLITE_FULL:  # the engine's set-up is what makes a commit durable
                    raise RuntimeError(f"SQLite synchronous={level}, not FULL")
        except BaseException:
            conn.invalidate()
            raise
        self._conn, self._cursor = conn, cursor
        return cursor

    def begin(self, lock: int | None = None) -> None:
        """Start a platform transaction; with `lock`, hold that advisory lock until it ends.

        On SQLite the transaction takes the database's write lock at once
        (`BEGIN IMMEDIATE`): it is the one writer until it ends, so what it
        reads stays true.
        """
        if self.dialect == "sqlite":
            sql, params = "BEGIN IMMEDIATE", None
        elif lock is None:
            sql, params = "SELECT set_config('app.platform', 'on', true)", None
        else:
            sql = "SELECT set_config('app.platform', 'on', true), pg_advisory_xact_lock(%(k)s)"
            params = {"k": lock}
        try:
            if self._conn is None:
                self._open().execute(sql, params or {})
                return
            try:
                self._cursor.execute(sql, params or {})
            except self._error as exc:
                # A kept connection the server dropped meanwhile (a restart): what the
                # pool's ping on checkout did for a session, a fresh connection once more.
                dropped = self._engine.dialect.is_disconnect
                if not dropped(cast(Any, exc), self._conn.driver_connection, None):
                    raise
                self.discard()
                self._open().execute(sql, params or {})
        except Exception as exc:
            raise self._translate(exc, sql) from exc

    def execute(self, sql: str, params: Row | None = None) -> Any:
        """Run one statement in the transaction; return the cursor (for `fetchone`/`fetchall`)."""
        try:
            self._cursor.execute(sql, params or {})
        except Exception as exc:
            raise self._translate(exc, sql) from exc
        return self._cursor

    def executemany(self, sql: str, rows: Sequence[Row]) -> None:
        try:
            if len(rows) == 1:  # psycopg runs executemany in a pipeline: dearer for one row
                self._cursor.execute(sql, rows[0])
            else:
                self._cursor.executemany(sql, rows)
        except Exception as exc:
            raise self._translate(exc, sql) from exc

    def commit(self) -> None:
        try:
            self._conn.commit()
        except Exception as exc:
            raise self._translate(exc, "COMMIT") from exc

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: what fails inside it is undone, and the rest kept."""
        self.execute("SAVEPOINT direct")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK TO SAVEPOINT direct")
            self.execute("RELEASE SAVEPOINT direct")
            raise
        self.execute("RELEASE SAVEPOINT direct")

    def rollback(self) -> None:
        """End the transaction without its changes; a connection that cannot is discarded."""
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except Exception:
            self.discard()

    def discard(self) -> None:
        """Drop the connection (after an error): the next transaction opens a fresh one."""
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            conn.invalidate()

    def close(self) -> None:
        """Give the connection back to the pool."""
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            conn.close()

    def __repr__(self) -> str:
        return f"DirectConnection(dialect={self.dialect!r})"
