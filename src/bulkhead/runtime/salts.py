"""Per-tenant `cache_salt` for shared vLLM servers, so prefix-cache hits never cross tenants.

vLLM keys its prefix cache by the request's `cache_salt` (when given): two
requests share cached blocks only if their salts are equal.  Bulkhead sends
every call to a deployment with option ``engine=vllm`` the salt of the
caller's tenant — an HMAC of the tenant id under a platform secret, so it is
stable across replicas that share the secret, unguessable, and different
for every tenant — and strips any `cache_salt` a client sends (it is a
reserved field, `gateway.validate.RESERVED`).  A tenant can thus neither
probe another tenant's cached prompts by timing nor choose a salt to join
them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

_LABEL = b"bulkhead cache_salt v1\x00"


class CacheSalts:
    def __init__(self, secret: bytes):
        if len(secret) < 32:
            raise ValueError("the cache-salt secret must be at least 32 bytes")
        self._secret = secret
        self._cache: dict[str, str] = {}

    @classmethod
    def load_or_create(cls, path: Path) -> CacheSalts:
        """The secret from `path` (0600), created on first use; share it between replicas."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
        return cls(path.read_bytes())

    def for_tenant(self, tenant_id: str) -> str:
        salt = self._cache.get(tenant_id)
        if salt is None:
            mac = hmac.new(self._secret, _LABEL + tenant_id.encode(), hashlib.sha256).digest()
            salt = self._cache[tenant_id] = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        return salt

    def __repr__(self) -> str:
        return "CacheSalts(<secret>)"

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError("CacheSalts cannot be pickled")
