"""Per-tenant `cache_salt` for shared vLLM servers, so prefix-cache hits never cross tenants.

vLLM keys its prefix cache by the request's `cache_salt` (when given): two
requests share cached blocks only if their salts are equal.  Bulkhead sends
every call to a deployment with option ``engine=vllm`` the salt of the
caller's tenant — an HMAC of the tenant id under a platform secret, so it is
the same on every replica (the secret is in the database they share),
unguessable, and different for every tenant — and strips any `cache_salt` a client sends (it is a
reserved field, `gateway.validate.RESERVED`).  A tenant can thus neither
probe another tenant's cached prompts by timing nor choose a salt to join
them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

_LABEL = b"bulkhead cache_salt v1\x00"


class CacheSalts:
    """The tenants' salts under the platform's current secret (`store.salt_keys` keeps it).

    The secret lives sealed in the database every replica shares, so they all
    send a tenant the same salt; a rotation `install`s the next one, after
    which every tenant's salt changes (vLLM's prefix caches start cold once,
    which is all a rotation costs).
    """

    def __init__(self, secret: bytes):
        self._state = (_checked(secret), dict[str, str]())

    def install(self, secret: bytes) -> None:
        """Salt with `secret` from now on (one atomic swap; the memo starts empty)."""
        if not hmac.compare_digest(secret, self._state[0]):
            self._state = (_checked(secret), {})

    def for_tenant(self, tenant_id: str) -> str:
        secret, memo = self._state
        salt = memo.get(tenant_id)
        if salt is None:
            mac = hmac.new(secret, _LABEL + tenant_id.encode(), hashlib.sha256).digest()
            salt = memo[tenant_id] = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        return salt

    def __repr__(self) -> str:
        return "CacheSalts(<secret>)"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("CacheSalts cannot be pickled")


def _checked(secret: bytes) -> bytes:
    if len(secret) < 32:
        raise ValueError("the cache-salt secret must be at least 32 bytes")
    return bytes(secret)
