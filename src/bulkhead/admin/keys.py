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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bulkhead.admin import answers
from bulkhead.admin.deps import need
from bulkhead.admin.effects import Effect
from bulkhead.admin.platform.kms import version_param, versions_json
from bulkhead.admin.router import Call, Route
from bulkhead.crypto import TenantKeyStatus
from bulkhead.store.schema import utcnow


@dataclass(frozen=True, slots=True)
class PlatformRotations:
    """What rotating each of the platform's own keys does (wired in `bulkhead.app`)."""

    platform_kek: Callable[[], str]
    ca: Callable[[], str]
    cache_salt: Callable[[], str]
    retire_platform_kek: Callable[[int], TenantKeyStatus]
    """Retire one version of the platform KEK (refused while it wraps anything)."""


def _rotations(call: Call) -> PlatformRotations:
    return need(call.services.platform_rotations, "platform key rotations")


async def status(call: Call) -> answers.KeyTable:
    now, inventory = utcnow(), need(call.services.key_inventory, "key inventory")
    keys = await asyncio.to_thread(inventory.table, now)
    return answers.KeyTable(
        object="list", as_of=now.isoformat(), data=[k.as_json(now) for k in keys]
    )


async def bundle(call: Call) -> answers.TrustBundle:
    ca = need(call.services.ca, "internal CA")
    return answers.TrustBundle(trust_domain=ca.trust_domain, bundle=ca.cert_pem.decode("ascii"))


async def _rotate(kind: str, run: Callable[[], str]) -> answers.KeyRotated:
    return answers.KeyRotated(kind=kind, rotated=await asyncio.to_thread(run))


async def rotate_platform_kek(call: Call) -> answers.KeyRotated:
    return await _rotate("platform-kek", _rotations(call).platform_kek)


async def rotate_ca(call: Call) -> answers.KeyRotated:
    return await _rotate("ca", _rotations(call).ca)


async def rotate_cache_salt(call: Call) -> answers.KeyRotated:
    return await _rotate("cache-salt", _rotations(call).cache_salt)


async def retire_kek(call: Call) -> dict[str, Any]:
    version = version_param(call)
    retired = await asyncio.to_thread(_rotations(call).retire_platform_kek, version)
    return {"kind": "platform-kek", "retired": version, **versions_json(retired)}


ROUTES = (
    Route.get(
        "/admin/v1/keys/status",
        action="admin:kms.list",
        handler=status,
        summary="Every key the platform holds",
        response=answers.KeyTable,
    ),
    Route.get(
        "/admin/v1/keys/ca/bundle",
        action="admin:kms.list",
        handler=bundle,
        summary="The internal CA's trust bundle",
        response=answers.TrustBundle,
    ),
    Route.post(
        "/admin/v1/keys/platform-kek/rotate",
        action="admin:kms.platform.rotate",
        handler=rotate_platform_kek,
        summary="Rotate the platform's platform-kek (as the schedule does)",
        response=answers.KeyRotated,
    ),
    Route.post(
        "/admin/v1/keys/ca/rotate",
        action="admin:kms.ca.rotate",
        handler=rotate_ca,
        summary="Rotate the internal CA (needs a grant; the new version issues later)",
        response=answers.KeyRotated,
        effects=frozenset({Effect.ROTATE_CA}),
    ),
    Route.post(
        "/admin/v1/keys/cache-salt/rotate",
        action="admin:kms.platform.rotate",
        handler=rotate_cache_salt,
        summary="Rotate the platform's cache-salt (as the schedule does)",
        response=answers.KeyRotated,
    ),
    Route.post(
        "/admin/v1/keys/platform-kek/versions/{version}/retire",
        action="admin:kms.platform.retire",
        handler=retire_kek,
        summary="Retire a platform KEK version nothing uses any more (needs a grant)",
        response=answers.KeyVersions,
        effects=frozenset({Effect.RETIRE_KEY}),
    ),
)
