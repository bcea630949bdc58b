"""The platform's keys: one table of all of them, the CA's trust bundle, rotating its own.

`GET /admin/v1/keys/status` lists every key the platform holds (tenant KEKs,
the platform KEK, audit signing keys, CA versions, the cache-salt secret,
session keys) with its age, its next scheduled rotation and what it still
protects; never material.  Reading it needs no grant (auditors read it too).
The platform's own keys rotate here on demand, as the maintenance loop rotates
them on schedule; the audit signing key keeps its privileged route
(`POST /admin/v1/audit/keys/rotate`), and tenants' KEKs theirs.

Like the audit key, the CA changes what parties outside the gateway must
trust (an upstream's operator installs the new bundle before the new version
issues) and its old key is destroyed once the new one issues, so rotating it
on demand needs an approved grant (`admin:kms.ca.rotate`).  Rotating the
platform KEK only re-wraps (its old version stays until retired) and
rotating the cache-salt secret costs one cold prefix cache; neither makes
anything readable or unverifiable, so they need none, as a tenant KEK's
rotation needs none.

Retiring an old version of the platform KEK (once a rotation re-wrapped
everything it wrapped) is privileged like retiring a tenant's
(`Effect.RETIRE_KEY`, grant `admin:kms.platform.retire`): whatever that
version still wrapped would no longer open.  The keyring refuses a version
that still wraps anything, and the KMS refuses the primary one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bulkhead.admin.effects import Effect
from bulkhead.admin.kms import version_param, versions_json
from bulkhead.admin.router import Call, Route
from bulkhead.crypto import TenantKeyStatus
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
    retire_platform_kek: Callable[[int], TenantKeyStatus]
    """Retire one version of the platform KEK (refused while it wraps anything)."""

    def by_kind(self) -> Mapping[str, Callable[[], str]]:
        return {"platform-kek": self.platform_kek, "ca": self.ca, "cache-salt": self.cache_salt}


def routes(
    inventory: KeyInventory | None, rotations: PlatformRotations | None, ca: InternalCA | None
) -> list[Route]:
    """The routes, where the gateway holds the platform's keys (none in a bare test app)."""
    if inventory is None or rotations is None or ca is None:
        return []
    return _routes(inventory, rotations, ca)


def _routes(inventory: KeyInventory, rotations: PlatformRotations, ca: InternalCA) -> list[Route]:
    async def status(call: Call) -> dict[str, Any]:
        now = utcnow()
        keys = await asyncio.to_thread(inventory.table, now)
        return {"object": "list", "as_of": now.isoformat(), "data": [k.as_json(now) for k in keys]}

    async def bundle(call: Call) -> dict[str, Any]:
        return {"trust_domain": ca.trust_domain, "bundle": ca.cert_pem.decode("ascii")}

    def rotate(kind: str, run: Callable[[], str]) -> Route:
        async def handler(call: Call) -> dict[str, Any]:
            return {"kind": kind, "rotated": await asyncio.to_thread(run)}

        if kind == "ca":
            summary = "Rotate the internal CA (needs a grant; the new version issues later)"
            return Route(
                "POST", f"{P}/{kind}/rotate", "admin:kms.ca.rotate", handler, summary,
                effects=frozenset({Effect.ROTATE_CA}),
            )  # fmt: skip
        summary = f"Rotate the platform's {kind} (as the schedule does)"
        return Route("POST", f"{P}/{kind}/rotate", "admin:kms.platform.rotate", handler, summary)

    async def retire_kek(call: Call) -> dict[str, Any]:
        version = version_param(call)
        retired = await asyncio.to_thread(rotations.retire_platform_kek, version)
        return {"kind": "platform-kek", "retired": version, **versions_json(retired)}

    return [
        Route("GET", f"{P}/status", "admin:kms.list", status, "Every key the platform holds"),
        Route("GET", f"{P}/ca/bundle", "admin:kms.list", bundle, "The internal CA's trust bundle"),
        *(rotate(kind, run) for kind, run in rotations.by_kind().items()),
        Route(
            "POST",
            f"{P}/platform-kek/versions/{{version}}/retire",
            "admin:kms.platform.retire",
            retire_kek,
            "Retire a platform KEK version nothing uses any more (needs a grant)",
            effects=frozenset({Effect.RETIRE_KEY}),
        ),
    ]
