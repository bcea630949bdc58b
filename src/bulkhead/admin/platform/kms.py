"""Tenant keys and lifecycle: KEK status, rotation, retirement, settings, crypto-shredding.

Key material never leaves the KMS; these routes show versions and dates only.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bulkhead.admin import answers
from bulkhead.admin import schemas as s
from bulkhead.admin.effects import Effect
from bulkhead.admin.router import Call, Route
from bulkhead.crypto import TenantKeyStatus
from bulkhead.errors import InvalidRequest
from bulkhead.store import lifecycle, repo


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


async def tenant_id(call: Call) -> str:
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, call.params["name"]))
    return tenant.id


async def status(call: Call) -> dict[str, Any]:
    tid = await tenant_id(call)
    found = await asyncio.to_thread(call.services.keyring.status, tid)
    in_use = await asyncio.to_thread(call.services.keyring.versions_in_use, tid)
    out = status_json(call.params["name"], found)
    for version in out["versions"]:
        version["objects"] = in_use.get(version["version"], 0)
    return out


async def rotate(call: Call) -> dict[str, Any]:
    rotation = await asyncio.to_thread(call.services.keyring.rotate, await tenant_id(call))
    out = status_json(call.params["name"], rotation.status)
    out["rewrapped"] = rotation.rewrapped
    out["unreadable"] = list(rotation.unreadable)
    return out


async def retire(call: Call) -> dict[str, Any]:
    version = version_param(call)
    retired = await asyncio.to_thread(call.services.keyring.retire, await tenant_id(call), version)
    return status_json(call.params["name"], retired)


async def get_config(call: Call) -> dict[str, Any]:
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, call.params["name"]))
    return {"tenant": tenant.name, **tenant.config.to_json()}


async def set_config(call: Call) -> dict[str, Any]:
    body: s.TenantConfigPatch = call.body
    changes = body.model_dump(mode="json", exclude_none=True)
    tenant = await call.services.control.write(
        lambda db: lifecycle.set_config(db, call.params["name"], changes)
    )
    return {"tenant": tenant.name, **tenant.config.to_json()}


async def delete(call: Call) -> dict[str, Any]:
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, call.params["name"]))
    # Keys first: once the KEKs are gone nothing of the tenant can be read,
    # even if deleting the rows below were to fail.
    await asyncio.to_thread(call.services.keyring.shred, tenant.id)
    await call.services.control.write(lambda db: lifecycle.delete_tenant(db, tenant.name))
    return {"tenant": tenant.name, "id": tenant.id, "deleted": True, "keys_destroyed": True}


ROUTES = (
    Route.get(
        "/admin/v1/tenants/{name}/kms",
        action="admin:kms.get",
        handler=status,
        summary="A tenant's KEK versions",
        response=answers.KeyVersions,
    ),
    Route.post(
        "/admin/v1/tenants/{name}/kms/rotate",
        action="admin:kms.rotate",
        handler=rotate,
        summary="Rotate a tenant's KEK and re-wrap its data keys (no data is re-encrypted)",
        response=answers.KeyVersions,
    ),
    Route.post(
        "/admin/v1/tenants/{name}/kms/versions/{version}/retire",
        action="admin:kms.retire",
        handler=retire,
        summary="Retire a KEK version that no object uses any more (needs a grant)",
        response=answers.KeyVersions,
        effects=frozenset({Effect.RETIRE_KEY}),
    ),
    Route.get(
        "/admin/v1/tenants/{name}/config",
        action="admin:tenants.get",
        handler=get_config,
        summary="A tenant's settings",
        response=answers.TenantConfig,
    ),
    Route.patch(
        "/admin/v1/tenants/{name}/config",
        action="admin:tenants.configure",
        handler=set_config,
        summary="Change a tenant's settings (retention, KEK rotation period)",
        body=s.TenantConfigPatch,
        response=answers.TenantConfig,
        effects=frozenset({Effect.CHANGE_SAFEGUARDS}),
    ),
    Route.delete(
        "/admin/v1/tenants/{name}",
        action="admin:tenants.delete",
        handler=delete,
        summary="Delete a tenant and crypto-shred its data (destroys its KEKs; needs a grant)",
        response=answers.TenantDeleted,
        effects=frozenset({Effect.DELETE_TENANT}),
    ),
)
