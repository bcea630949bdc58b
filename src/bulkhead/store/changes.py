"""Whether anything was committed to a SQLite database since the last look, for a few µs.

The catalog confirms it is fresh once a second on SQLite (`Application._poll`):
with nothing committed that is one transaction and one query on the pool, every
second, in a process that is otherwise idle. SQLite keeps a change counter for
exactly this: `PRAGMA data_version` on a connection changes whenever another
connection (of this process or any other) commits. `CommitWatch` holds one
connection for it alone, so the catalog reads its version only after a commit.
PostgreSQL has no such counter; there the listener's ping does this job
(`store.listen`).
"""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy.engine import make_url


class CommitWatch:
    """`PRAGMA data_version` on a dedicated connection: it changes with every commit made
    through any other connection."""

    def __init__(self, path: str):
        # The pool's connections set WAL mode; this one only reads the counter.
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=5.0)
        self._lock = threading.Lock()

    @classmethod
    def for_url(cls, url: str) -> CommitWatch | None:
        """One for a SQLite file; None for PostgreSQL or an in-memory database."""
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        return cls(str(parsed.database))

    def counter(self) -> int:
        """The counter now: equal to an earlier reading if nobody committed in between."""
        with self._lock:
            row = self._conn.execute("PRAGMA data_version").fetchone()
            return int(row[0])
