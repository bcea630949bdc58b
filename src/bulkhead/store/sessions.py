"""Verifies sign-in session tokens without a database round trip on the hot path.

A session is read from the database the first time a replica sees it, then
kept in memory for at most `cache_s` seconds and only while the catalog
version is the one it was read under.  Logging out (or resetting a
password) revokes the row and bumps the catalog version, so this replica
drops the entry at once and every other replica on its next catalog poll.

An unknown session id costs one indexed read, so a flood of made-up tokens
must not become a flood of reads.  Two bounds: an id found missing is
remembered as missing for `miss_cache_s` (a client retrying one bogus or
deleted token costs one read per window), and misses draw on a token bucket
(`miss_rate` per second, `miss_burst` at once).  While the bucket is empty,
ids not in either cache are refused with `RateLimited` without a read: during
such a flood a brand-new session may be asked to retry, but sessions already
in use, which are cached, are not affected.  Session ids are 80 random bits,
so remembering one as missing cannot shadow a session created later.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bulkhead.domain import SignedIn
from bulkhead.errors import RateLimited, Unauthenticated
from bulkhead.identity.sessions import parse_session, verify_token
from bulkhead.store import signin
from bulkhead.store.catalog import Catalog
from bulkhead.store.db import Database

_MAX_ENTRIES = 100_000
_MAX_MISSES = 10_000


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
        miss_cache_s: float = 5.0,
        miss_rate: float = 20.0,
        miss_burst: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._db, self._catalog = db, catalog
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._misses = _MissCache(miss_cache_s, clock)
        self._budget = _Bucket(miss_rate, miss_burst, clock)

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
        if stored is None:
            self._misses.add(session_id)
            return None
        self._budget.give_back()  # Only misses spend the budget.
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[session_id] = _Entry(stored, self._clock(), version)
        return stored

    def _lookup(self, session_id: str) -> signin.StoredSession | None:
        """Bounded reads of ids not cached: known-missing ones and, in a flood, any."""
        if self._misses.has(session_id):
            return None
        # Taken before the read, so concurrent lookups cannot overdraw the budget.
        if not self._budget.take():
            raise RateLimited(
                "Too many unknown session tokens; try again shortly.", retry_after_s=1.0
            )
        return self._load(session_id)

    async def verify(self, token: str, *, now: datetime | None = None) -> SignedIn:
        """What the session grants; raise `Unauthenticated` if it is unknown, revoked or over."""
        session_id = parse_session(token)
        stored = self._cached(session_id)
        if stored is None:
            stored = await asyncio.to_thread(self._lookup, session_id)
        if stored is None:
            raise Unauthenticated("Incorrect session token provided.")
        verify_token(token, stored.secret_hash)
        if stored.revoked or (now or datetime.now(UTC)) >= stored.signed_in.expires_at:
            raise Unauthenticated("This session has ended; sign in again.", code="session_expired")
        return stored.signed_in

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)


class _MissCache:
    """Session ids recently found missing, each for `ttl_s`; bounded, oldest dropped first."""

    def __init__(self, ttl_s: float, clock: Callable[[], float]):
        self._ttl_s, self._clock = ttl_s, clock
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

    def add(self, session_id: str) -> None:
        with self._lock:
            if len(self._until) >= _MAX_MISSES:
                # Insertion order is expiry order: the first entry is the oldest.
                del self._until[next(iter(self._until))]
            self._until.pop(session_id, None)
            self._until[session_id] = self._clock() + self._ttl_s


class _Bucket:
    """A token bucket: `rate` per second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]):
        self._rate, self._burst, self._clock = rate, float(burst), clock
        self._lock = threading.Lock()
        self._tokens, self._at = float(burst), clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def take(self) -> bool:
        with self._lock:
            self._refill()
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True

    def give_back(self) -> None:
        with self._lock:
            self._tokens = min(self._burst, self._tokens + 1.0)
