"""A JSON Web Key Set (RFC 7517), fetched from an IdP and cached.

A token whose `kid` is not in the cached set makes the cache fetch again
(the IdP may have rotated its keys), but at most once per
`min_refresh_s`, so a stream of tokens with made-up key ids cannot turn the
gateway into a load generator against the IdP.  The set is also refetched
when it is older than `max_age_s`; if that fetch fails the old keys stay in
use until the next try.

The IdP's server is the tenant's to run, so the fetch is bounded as hostile:
one caller fetches while the others go on with the keys known (none waits
on it, holding a thread the rest of the gateway needs).  The fetch itself is
`identity/idp_fetch.IdpFetcher.fetch`: through the egress guard (never a
platform-internal address), with a deadline, a size bound, no redirect and
no proxy from the environment.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from jwt import PyJWK
from jwt.exceptions import PyJWKError

from bulkhead.errors import Unauthenticated

Fetch = Callable[[str], bytes]
MAX_JWKS_BYTES = 1024 * 1024
# The one answer for a token that fails before its signature is verified: an
# unknown issuer, an unknown key id and a bad signature must look alike, or the
# answers would tell a stranger which IdPs and keys are registered.
INVALID = "The identity token is invalid."


def check_jwks_url(url: str) -> None:
    """HTTPS only, except on the loopback interface (a local IdP, or tests).

    Where the URL may lead is not decided here: every fetch goes through the
    IdP egress policy at connect time (`identity/idp_fetch`).
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if loopback:
            return
    raise ValueError("jwks_url must be an https URL (plain http only on the loopback interface)")


def parse_jwks(raw: bytes) -> dict[str, PyJWK]:
    """Signing keys by key id; keys without a `kid`, or for encryption, are left out."""
    if len(raw) > MAX_JWKS_BYTES:
        raise ValueError("JWKS too large")
    document: Any = json.loads(raw)
    keys: dict[str, PyJWK] = {}
    for entry in document.get("keys", []) if isinstance(document, Mapping) else []:
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            keys[kid] = PyJWK(dict(entry))
        except PyJWKError:
            continue
    return keys


class JwksCache:
    """The keys of one JWKS URL; thread-safe (validation runs off the event loop)."""

    def __init__(
        self,
        url: str,
        *,
        fetch: Fetch,
        min_refresh_s: float = 30.0,
        max_age_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.url = url
        self._fetch = fetch
        self.min_refresh_s = min_refresh_s
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._fetching = False
        self.fetches = 0

    def key(self, kid: str) -> PyJWK:
        """The key named `kid`; refetch the set once if it is unknown or the set is old.

        Only one caller fetches, outside the lock; the others do not wait for
        it (the IdP may be slow on purpose, and every waiter would hold a
        thread that the rest of the gateway needs): they use the keys known
        now, and an unknown key id is refused until the fetch has brought it.
        """
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            found = self._keys.get(kid)
            if found is not None and age is not None and age < self.max_age_s:
                return found
            fetch = not self._fetching and (age is None or age >= self.min_refresh_s)
            if fetch:
                self._fetching, self._fetched_at = True, now
                self.fetches += 1
        if fetch:
            found = self._refresh().get(kid, found)
        if found is None:
            raise Unauthenticated(INVALID, code="invalid_token")
        return found

    def _refresh(self) -> dict[str, PyJWK]:
        try:
            fresh: dict[str, PyJWK] | None = parse_jwks(self._fetch(self.url))
        except (OSError, ValueError):
            # Keep the keys we had; the next refresh is allowed after min_refresh_s.
            fresh = None
        with self._lock:
            self._fetching = False
            if fresh is not None:
                self._keys = fresh
            return self._keys
