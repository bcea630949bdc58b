"""The platform's keys: one table of all of them, the CA's trust bundle, rotating its own.

`GET /admin/v1/keys/status` lists every key the platform holds (tenant KEKs,
the platform KEK, audit signing keys, CA versions, the cache-salt secret,
session keys) with its age, its next scheduled rotation and what it still
protects; never material.  Reading it needs no grant (auditors read it too).
The platform's own keys rotate here on demand, as the maintenance loop rotates
them on schedule; the audit signing key keeps its privileged route
(`POST /admin/v1/audit/keys/rotate`), and tenants' KEKs theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bulkhead.admin.router import Call, Route
from bulkhead.identity.ca import InternalCA
from bulkhead.store.key_status import KeyInventory
from bulkhead.store.schema import utcnow

P = "/admin/v1/keys"


@dataclass(frozen=True, slots=True)
class PlatformRotations:
    """What rotating each of the platform's own keys does (wired in `app.py`)."""

    platform_kek: Callable[[], str]
    ca: Callable[[], str]
    cache_salt: Callable[[], str]

    def by_kind(self) -> Mapping[str, Callable[[], str]]:
        return {"platform-kek": self.platform_kek, "ca": self.ca, "cache-salt": self.cache_salt}


def routes(inventory: KeyInventory, rotations: PlatformRotations, ca: InternalCA) -> list[Route]:
    async def status(call: Call) -> dict[str, Any]:
        now = utcnow()
        keys = await asyncio.to_thread(inventory.table, now)
        return {"object": "list", "as_of": now.isoformat(), "data": [k.as_json(now) for k in keys]}

    async def bundle(call: Call) -> dict[str, Any]:
        return {"trust_domain": ca.trust_domain, "bundle": ca.cert_pem.decode("ascii")}

    def rotate(kind: str, run: Callable[[], str]) -> Route:
        async def handler(call: Call) -> dict[str, Any]:
            return {"kind": kind, "rotated": await asyncio.to_thread(run)}

        return Route(
            "POST",
            f"{P}/{kind}/rotate",
            "admin:kms.platform.rotate",
            handler,
            f"Rotate the platform's {kind} (as the schedule does)",
        )

    return [
        Route("GET", f"{P}/status", "admin:kms.list", status, "Every key the platform holds"),
        Route("GET", f"{P}/ca/bundle", "admin:kms.list", bundle, "The internal CA's trust bundle"),
        *(rotate(kind, run) for kind, run in rotations.by_kind().items()),
    ]
