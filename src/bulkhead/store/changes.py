"""Whether anything was committed to a SQLite database since the last look, for a few µs.

The catalog confirms it is fresh once a second on SQLite (`Application._poll`):
with nothing committed that is one transaction and one query on the pool, every
second, in a process that is otherwise idle. SQLite keeps a change counter for
exactly this: `PRAGMA data_version` on a connection changes whenever another
connection (of this process or any other) commits. `CommitWatch` holds one
connection for it alone, so the catalog reads its version only after a commit;
the check is a few µs and never waits, so the poll makes it on the event loop
and hands the look to a thread only when something was committed.
PostgreSQL has no such counter; there the listener's ping does this job
(`store.listen`).
"""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy.engine import make_url


class CommitWatch:
    """`PRAGMA data_version` on a dedicated connection: it changes with every commit made
    through any other connection.  It never waits: the event loop asks it (`Catalog.
    confirm_if_unchanged`), so a busy database, or another thread reading it, answers None
    at once and the caller looks the long way (a transaction, which may wait)."""

    def __init__(self, path: str):
        # The pool's connections set WAL mode; this one only reads the counter, with no
        # busy wait (timeout 0): SQLITE_BUSY is an answer, not a pause.
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=0)
        self._lock = threading.Lock()

    @classmethod
    def for_url(cls, url: str) -> CommitWatch | None:
        """One for a SQLite file; None for PostgreSQL or an in-memory database."""
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        return cls(str(parsed.database))

    def counter(self) -> int | None:
        """The counter now: equal to an earlier reading if nobody committed in between;
        None when it cannot be read at once (busy, or being read by another thread)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            row = self._conn.execute("PRAGMA data_version").fetchone()
            return int(row[0])
        except sqlite3.Error:  # locked, or worse: the long way says which, and waits
            return None
        finally:
            self._lock.release()
