"""Tenant key management: KEK status and rotation (key material never leaves the KMS)."""

from __future__ import annotations

import asyncio
from typing import Any

from bulkhead.admin.control import Control
from bulkhead.admin.router import Call, Route
from bulkhead.crypto import TenantKeyStatus
from bulkhead.store import repo
from bulkhead.store.files import FileService

P = "/admin/v1/tenants/{name}/kms"


def status_json(name: str, status: TenantKeyStatus) -> dict[str, Any]:
    return {
        "tenant": name,
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


def routes(control: Control, files: FileService) -> list[Route]:
    async def tenant_id(call: Call) -> str:
        tenant = await control.read(lambda db: repo.get_tenant(db, call.params["name"]))
        return tenant.id

    async def status(call: Call) -> dict[str, Any]:
        found = await asyncio.to_thread(files.ensure_key, await tenant_id(call))
        return status_json(call.params["name"], found)

    async def rotate(call: Call) -> dict[str, Any]:
        rotated = await asyncio.to_thread(files.rotate, await tenant_id(call))
        return status_json(call.params["name"], rotated)

    return [
        Route("GET", P, "admin:kms.get", status, "A tenant's key-encryption key versions"),
        Route(
            "POST",
            f"{P}/rotate",
            "admin:kms.rotate",
            rotate,
            "Rotate a tenant's KEK and re-wrap its data keys (no data is re-encrypted)",
        ),
    ]
