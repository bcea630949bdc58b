"""Verifies sign-in session tokens without a database round trip on the hot path.

A session is read from the database the first time a replica sees it, then
kept in memory for at most `cache_s` seconds and only while the catalog
version is the one it was read under.  Logging out (or resetting a
password) revokes the row and bumps the catalog version, so this replica
drops the entry at once and every other replica on its next catalog poll.

An unknown session id costs one indexed read, so a flood of made-up tokens
must not become a flood of reads — nor lock out the sessions in use:

* a token that is not well-formed is refused before anything is looked up;
* an id found missing is remembered as missing for `miss_cache_s` (a client
  retrying one bogus or deleted token costs one read per window);
* ids never seen draw on two token buckets: the client's own
  (`client_miss_rate` per second, `client_miss_burst` at once; a client is
  its address, see `limits.attempts.client_key`) and everyone's
  (`miss_rate`, `miss_burst`).  While either is empty, such ids are refused
  with `RateLimited` without a read.  One client's flood empties only its
  own bucket, and draws on the shared one no faster than its own refills;
* a session this replica has read before is re-read, once it is older than
  `cache_s` or the catalog moved, without drawing on either bucket: that
  costs one read per session in use, which no flood of unknown ids can
  multiply, so a catalog change during a flood does not refuse valid sessions.

Session ids are 80 random bits, so remembering one as missing cannot shadow
a session created later.
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
from bulkhead.limits.attempts import client_key
from bulkhead.store import signin
from bulkhead.store.catalog import Catalog
from bulkhead.store.db import Database

_MAX_ENTRIES = 100_000
_MAX_MISSES = 10_000
_MAX_CLIENTS = 10_000


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
        miss_rate: float = 100.0,
        miss_burst: int = 400,
        client_miss_rate: float = 20.0,
        client_miss_burst: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._db, self._catalog = db, catalog
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._misses = _MissCache(miss_cache_s, clock)
        self._budget = _Bucket(miss_rate, miss_burst, clock)
        self._client_budgets = _Budgets(client_miss_rate, client_miss_burst, clock)

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
        if stored is None:
            self._misses.add(session_id)
        return stored

    def _lookup(self, session_id: str, client: str) -> signin.StoredSession | None:
        """Bounded reads of ids never seen: known-missing ones and, in a flood, any."""
        if self._misses.has(session_id):
            return None
        # Taken before the read, so concurrent lookups cannot overdraw the budgets.
        if not self._client_budgets.take(client):
            raise _too_many("client")
        if not self._budget.take():
            self._client_budgets.give_back(client)
            raise _too_many("all")
        stored = self._load(session_id)
        if stored is not None:  # Only misses spend the budgets.
            self._budget.give_back()
            self._client_budgets.give_back(client)
        return stored

    async def _stored(self, session_id: str, client: str | None) -> signin.StoredSession | None:
        entry = self._entries.get(session_id)
        if entry is not None and self._fresh(entry):
            return entry.stored
        if entry is not None:  # Read before: one read per session in use, no budget.
            return await asyncio.to_thread(self._load, session_id)
        return await asyncio.to_thread(self._lookup, session_id, client_key(client))

    async def verify(
        self, token: str, *, client: str | None = None, now: datetime | None = None
    ) -> SignedIn:
        """What the session grants; raise `Unauthenticated` if it is unknown, revoked or over.

        `client` is the caller's address, which picks the budget an unknown id draws on.
        """
        stored = await self._stored(parse_session(token), client)
        if stored is None:
            raise Unauthenticated("Incorrect session token provided.")
        verify_token(token, stored.secret_hash)
        if stored.revoked or (now or datetime.now(UTC)) >= stored.signed_in.expires_at:
            raise Unauthenticated("This session has ended; sign in again.", code="session_expired")
        return stored.signed_in

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)


def _too_many(budget: str) -> RateLimited:
    refused = RateLimited("Too many unknown session tokens; try again shortly.", retry_after_s=1.0)
    refused.detail = f"session misses ({budget})"
    return refused


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


class _Budgets:
    """One `_Bucket` per client, for at most `_MAX_CLIENTS` clients (least recent dropped)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]):
        self._rate, self._burst, self._clock = rate, burst, clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, client: str) -> _Bucket:
        with self._lock:
            bucket = self._buckets.pop(client, None)
            if bucket is None:
                if len(self._buckets) >= _MAX_CLIENTS:
                    del self._buckets[next(iter(self._buckets))]
                bucket = _Bucket(self._rate, self._burst, self._clock)
            self._buckets[client] = bucket  # Last in the order: the most recent.
            return bucket

    def take(self, client: str) -> bool:
        return self._bucket(client).take()

    def give_back(self, client: str) -> None:
        self._bucket(client).give_back()
