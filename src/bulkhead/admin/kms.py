"""Tenant keys and lifecycle: KEK status, rotation, retirement, settings, crypto-shredding.

Key material never leaves the KMS; these routes show versions and dates only.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bulkhead.admin import schemas as s
from bulkhead.admin.control import Control
from bulkhead.admin.effects import Effect
from bulkhead.admin.router import Call, Route
from bulkhead.crypto import TenantKeyStatus
from bulkhead.errors import InvalidRequest
from bulkhead.store import lifecycle, repo
from bulkhead.store.keyring import TenantKeyring

P = "/admin/v1/tenants/{name}"


def status_json(name: str, status: TenantKeyStatus) -> dict[str, Any]:
    return {"tenant": name, **versions_json(status)}


def versions_json(status: TenantKeyStatus) -> dict[str, Any]:
    """A KEK's versions and dates (a tenant's or the platform's): never material."""
    return {
        "primary_version": status.primary,
        "versions": [
            {
                "version": v.version,
                "created_at": v.created_at.isoformat(),
                "retired_at": v.retired_at.isoformat() if v.retired_at else None,
            }
            for v in status.versions
        ],
    }


def version_param(call: Call) -> int:
    """The `{version}` of a path, an integer or a clear 400."""
    try:
        return int(call.params["version"])
    except ValueError:
        raise InvalidRequest("The version must be an integer.", param="version") from None


def routes(control: Control, keyring: TenantKeyring) -> list[Route]:
    async def tenant_id(call: Call) -> str:
        tenant = await control.read(lambda db: repo.get_tenant(db, call.params["name"]))
        return tenant.id

    async def status(call: Call) -> dict[str, Any]:
        tid = await tenant_id(call)
        found = await asyncio.to_thread(keyring.status, tid)
        in_use = await asyncio.to_thread(keyring.versions_in_use, tid)
        out = status_json(call.params["name"], found)
        for version in out["versions"]:
            version["objects"] = in_use.get(version["version"], 0)
        return out

    async def rotate(call: Call) -> dict[str, Any]:
        rotation = await asyncio.to_thread(keyring.rotate, await tenant_id(call))
        out = status_json(call.params["name"], rotation.status)
        out["rewrapped"] = rotation.rewrapped
        out["unreadable"] = list(rotation.unreadable)
        return out

    async def retire(call: Call) -> dict[str, Any]:
        version = version_param(call)
        retired = await asyncio.to_thread(keyring.retire, await tenant_id(call), version)
        return status_json(call.params["name"], retired)

    async def get_config(call: Call) -> dict[str, Any]:
        tenant = await control.read(lambda db: repo.get_tenant(db, call.params["name"]))
        return {"tenant": tenant.name, **tenant.config.to_json()}

    async def set_config(call: Call) -> dict[str, Any]:
        body: s.TenantConfigPatch = call.body
        changes = body.model_dump(mode="json", exclude_none=True)
        tenant = await control.write(
            lambda db: lifecycle.set_config(db, call.params["name"], changes)
        )
        return {"tenant": tenant.name, **tenant.config.to_json()}

    async def delete(call: Call) -> dict[str, Any]:
        tenant = await control.read(lambda db: repo.get_tenant(db, call.params["name"]))
        # Keys first: once the KEKs are gone nothing of the tenant can be read,
        # even if deleting the rows below were to fail.
        await asyncio.to_thread(keyring.shred, tenant.id)
        await control.write(lambda db: lifecycle.delete_tenant(db, tenant.name))
        return {"tenant": tenant.name, "id": tenant.id, "deleted": True, "keys_destroyed": True}

    return [
        Route("GET", f"{P}/kms", "admin:kms.get", status, "A tenant's KEK versions"),
        Route(
            "POST",
            f"{P}/kms/rotate",
            "admin:kms.rotate",
            rotate,
            "Rotate a tenant's KEK and re-wrap its data keys (no data is re-encrypted)",
        ),
        Route(
            "POST",
            f"{P}/kms/versions/{{version}}/retire",
            "admin:kms.retire",
            retire,
            "Retire a KEK version that no object uses any more (needs a grant)",
            effects=frozenset({Effect.RETIRE_KEY}),
        ),
        Route("GET", f"{P}/config", "admin:tenants.get", get_config, "A tenant's settings"),
        Route(
            "PATCH",
            f"{P}/config",
            "admin:tenants.configure",
            set_config,
            "Change a tenant's settings (retention, KEK rotation period)",
            s.TenantConfigPatch,
            effects=frozenset({Effect.CHANGE_SAFEGUARDS}),
        ),
        Route(
            "DELETE",
            P,
            "admin:tenants.delete",
            delete,
            "Delete a tenant and crypto-shred its data (destroys its KEKs; needs a grant)",
            effects=frozenset({Effect.DELETE_TENANT}),
        ),
    ]
