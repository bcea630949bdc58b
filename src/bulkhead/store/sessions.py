"""Verifies sign-in session tokens without a database round trip on the hot path.

A token's id proves itself (`identity.sessions.session_id_of`): a token this
platform did not issue, or whose id has expired, is refused before anything
is looked up.  Junk tokens, well-formed or not and from any number of
addresses, thus cost an HMAC or two and never a read, and there is no shared
budget for them to empty: a flood of them cannot get a valid session
refused, however fresh.

A session is read from the database the first time a replica sees its id,
then kept in memory for at most `cache_s` seconds and only while the catalog
version is the one it was read under.  Logging out (or resetting a
password) revokes the row and bumps the catalog version, so this replica
drops the entry at once and every other replica on its next catalog poll.

Only ids the platform signed reach the database, so reads are bounded by
sign-ins, which are rate limited (`limits.attempts`): a session in use costs
one read per `cache_s` or catalog change, and an id whose row is gone (its
principal or tenant was deleted) is remembered as missing until the id
itself expires, one read per id and replica.  A row is written before its
token is handed out, so one found missing never comes back.  Such ids number
at most the sign-ins of one session lifetime; `_MAX_MISSES` holds well over
an hour of the default global sign-in rate (600 a minute).
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
from bulkhead.identity.sessions import SessionId, SessionKeys, ended, session_id_of, verify_token
from bulkhead.store import signin
from bulkhead.store.catalog import Catalog
from bulkhead.store.db import Database

_MAX_ENTRIES = 100_000
_MAX_MISSES = 100_000


@dataclass(frozen=True, slots=True)
class _Entry:
    stored: signin.StoredSession
    loaded: float
    version: int


class SessionVerifier:
    """`keys` gives the platform's session keys as last loaded (`store.session_keys`)."""

    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        keys: Callable[[], SessionKeys],
        *,
        cache_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._db, self._catalog, self._keys = db, catalog, keys
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._misses = _MissCache(clock)

    def _fresh(self, entry: _Entry) -> bool:
        young = self._clock() - entry.loaded < self.cache_s
        return young and entry.version == self._catalog.snapshot.version

    def _load(self, session_id: str) -> signin.StoredSession | None:
        version = self._catalog.snapshot.version
        with self._db.platform_transaction() as session:
            stored = signin.load_session(session, session_id)
        with self._lock:
            if stored is None:
                self._entries.pop(session_id, None)
            else:
                if len(self._entries) >= _MAX_ENTRIES:
                    self._entries.clear()
                self._entries[session_id] = _Entry(stored, self._clock(), version)
        return stored

    async def _stored(self, proven: SessionId, now: datetime) -> signin.StoredSession | None:
        entry = self._entries.get(proven.value)
        if entry is not None and self._fresh(entry):
            return entry.stored
        if self._misses.has(proven.value):
            return None
        stored = await asyncio.to_thread(self._load, proven.value)
        if stored is None:
            self._misses.add(proven.value, (proven.expires_at - now).total_seconds())
        return stored

    async def verify(self, token: str, *, now: datetime | None = None) -> SignedIn:
        """What the session grants; raise `Unauthenticated` if it is unknown, revoked or over."""
        now = now or datetime.now(UTC)
        stored = await self._stored(session_id_of(token, self._keys(), now=now), now)
        if stored is None:
            raise Unauthenticated("Incorrect session token provided.")
        verify_token(token, stored.secret_hash)
        if stored.revoked or now >= stored.signed_in.expires_at:
            raise ended()
        return stored.signed_in

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)


class _MissCache:
    """Session ids found missing, each until its own expiry; bounded, oldest added dropped first."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def has(self, session_id: str) -> bool:
        with self._lock:
            until = self._until.get(session_id)
            if until is None:
                return False
            if until > self._clock():
                return True
            del self._until[session_id]
            return False

    def add(self, session_id: str, ttl_s: float) -> None:
        with self._lock:
            if len(self._until) >= _MAX_MISSES:
                # Insertion order: the first entry is the one added longest ago.
                del self._until[next(iter(self._until))]
            self._until.pop(session_id, None)
            self._until[session_id] = self._clock() + ttl_s
