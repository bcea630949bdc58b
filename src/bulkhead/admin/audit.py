"""Audit read APIs: platform auditors read all; a tenant's auditors and admins read their own.

A tenant's view holds only its own events; other tenants' entries appear in
its bundle as leaf hashes alone, and their event ids answer 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bulkhead.admin.router import Call, Route
from bulkhead.audit import export
from bulkhead.audit.keys import verifier_keys
from bulkhead.domain import Role, TenantContext
from bulkhead.store import Database, repo


def tenant_named(db: Database, name: str) -> str:
    with db.platform_transaction() as session:
        return repo.get_tenant(session, name).id


def admin_reads_tenant(
    ctx: TenantContext, params: dict[str, str], query: dict[str, str]
) -> str | None:
    """A platform admin reading one tenant's view needs a grant; auditors read by role."""
    return query.get("tenant") if ctx.role is Role.PLATFORM_ADMIN else None


def routes(db: Database, origin: str, rotate: Callable[[], str]) -> list[Route]:
    def own(call: Call) -> str | None:
        return None if call.ctx.is_platform else call.ctx.tenant_id

    async def events(call: Call) -> dict[str, Any]:
        after = call.int_query("after", -1, -1, 1 << 62)
        limit = call.int_query("limit", 100, 1, 1000)
        data = await asyncio.to_thread(export.list_events, db, own(call), after, limit)
        return {"object": "list", "data": data}

    async def bundle(call: Call) -> dict[str, Any]:
        tenant_id = own(call)
        if tenant_id is None and "tenant" in call.query:
            # A platform auditor may export one tenant's view, as that tenant would see it.
            tenant_id = await asyncio.to_thread(tenant_named, db, call.query["tenant"])
        return await asyncio.to_thread(export.build_bundle, db, origin, tenant_id)

    async def proof(call: Call) -> dict[str, Any]:
        return await asyncio.to_thread(export.prove, db, call.params["event_id"], own(call))

    async def keys(call: Call) -> dict[str, Any]:
        vkeys = await asyncio.to_thread(verifier_keys, db)
        return {"origin": origin, "verifiers": vkeys}

    async def rotate_key(call: Call) -> dict[str, Any]:
        return {"origin": origin, "verifier": await asyncio.to_thread(rotate)}

    routes: list[Route] = [
        Route(
            "POST",
            "/admin/v1/audit/keys/rotate",
            "admin:audit.keys.rotate",
            rotate_key,
            "Rotate this gateway's checkpoint-signing key (needs a grant)",
            privileged=True,
        ),
    ]
    for surface in ("admin", "tenant"):
        prefix = f"/{surface}/v1/audit"
        routes += [
            Route(
                "GET",
                f"{prefix}/events",
                f"{surface}:audit.list",
                events,
                "Audit events (?after=INDEX&limit=N)",
            ),
            Route(
                "GET",
                f"{prefix}/bundle",
                f"{surface}:audit.export.get",
                bundle,
                "Export a verifiable audit bundle (?tenant=NAME: a platform admin needs a grant)",
                privileged=surface == "admin",
                grant_target=admin_reads_tenant,
            ),
            Route(
                "GET",
                f"{prefix}/proofs/{{event_id}}",
                f"{surface}:audit.proof.get",
                proof,
                "Inclusion proof of one event in the newest checkpoint",
            ),
            Route(
                "GET",
                f"{prefix}/keys",
                f"{surface}:audit.keys.list",
                keys,
                "Public keys of the checkpoint signers",
            ),
        ]
    return routes
