"""Verifies sign-in session tokens without a database round trip on the hot path.

A session is read from the database the first time a replica sees it, then
kept in memory for at most `cache_s` seconds and only while the catalog
version is the one it was read under.  Logging out (or resetting a
password) revokes the row and bumps the catalog version, so this replica
drops the entry at once and every other replica on its next catalog poll.
An unknown session id costs one indexed read; it is never cached.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bulkhead.domain import SignedIn
from bulkhead.errors import Unauthenticated
from bulkhead.identity.sessions import parse_session, verify_token
from bulkhead.store import signin
from bulkhead.store.catalog import Catalog
from bulkhead.store.db import Database

_MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class _Entry:
    stored: signin.StoredSession
    loaded: float
    version: int


class SessionVerifier:
    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        *,
        cache_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._db, self._catalog = db, catalog
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def _cached(self, session_id: str) -> signin.StoredSession | None:
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        fresh = self._clock() - entry.loaded < self.cache_s
        if fresh and entry.version == self._catalog.snapshot.version:
            return entry.stored
        return None

    def _load(self, session_id: str) -> signin.StoredSession | None:
        version = self._catalog.snapshot.version
        with self._db.platform_transaction() as session:
            stored = signin.load_session(session, session_id)
        if stored is not None:
            with self._lock:
                if len(self._entries) >= _MAX_ENTRIES:
                    self._entries.clear()
                self._entries[session_id] = _Entry(stored, self._clock(), version)
        return stored

    async def verify(self, token: str, *, now: datetime | None = None) -> SignedIn:
        """What the session grants; raise `Unauthenticated` if it is unknown, revoked or over."""
        session_id = parse_session(token)
        stored = self._cached(session_id)
        if stored is None:
            stored = await asyncio.to_thread(self._load, session_id)
        if stored is None:
            raise Unauthenticated("Incorrect session token provided.")
        verify_token(token, stored.secret_hash)
        if stored.revoked or (now or datetime.now(UTC)) >= stored.signed_in.expires_at:
            raise Unauthenticated("This session has ended; sign in again.", code="session_expired")
        return stored.signed_in

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)
