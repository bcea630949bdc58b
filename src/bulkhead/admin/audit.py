"""Audit read APIs: platform auditors read all; a tenant's auditors and admins read their own.

A tenant's view holds its own events and the platform's actions on it;
other entries appear in its bundle as leaf hashes alone, and their event ids
answer 404.  Exports and proofs cost CPU and memory in proportion to the
log, so each caller (a tenant, or a platform principal) runs at most one
export and a few proofs at a time, and the gateway a few exports in all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from bulkhead.admin.router import Call, Route
from bulkhead.audit import export
from bulkhead.audit.keys import verifier_keys
from bulkhead.domain import Role, TenantContext
from bulkhead.errors import RateLimited
from bulkhead.store import Database, repo


class ExportGate:
    """At most `per_caller` runs per caller and `total` in all; more answer 429 at once.

    Used from the event loop only, so its counts need no lock.
    """

    def __init__(self, *, per_caller: int, total: int):
        self.per_caller, self.total = per_caller, total
        self._running: dict[str, int] = {}
        self._all = 0

    @contextlib.contextmanager
    def slot(self, caller: str) -> Iterator[None]:
        if self._running.get(caller, 0) >= self.per_caller or self._all >= self.total:
            raise RateLimited(
                "Too many audit exports or proofs are running; retry when yours has finished.",
                retry_after_s=2.0,
            )
        self._running[caller] = self._running.get(caller, 0) + 1
        self._all += 1
        try:
            yield
        finally:
            self._all -= 1
            self._running[caller] -= 1
            if not self._running[caller]:
                del self._running[caller]


def caller_of(ctx: TenantContext) -> str:
    """Whose budget a call spends: a tenant's, whatever key it uses, or a platform principal's."""
    return f"principal:{ctx.principal.id}" if ctx.is_platform else f"tenant:{ctx.tenant_id}"


def tenant_named(db: Database, name: str) -> str:
    with db.platform_transaction() as session:
        return repo.get_tenant(session, name).id


def admin_reads_tenant(
    ctx: TenantContext, params: dict[str, str], query: dict[str, str]
) -> str | None:
    """A platform admin reading one tenant's view needs a grant; auditors read by role."""
    return query.get("tenant") if ctx.role is Role.PLATFORM_ADMIN else None


def routes(db: Database, origin: str, rotate: Callable[[], str]) -> list[Route]:
    bundles = ExportGate(per_caller=1, total=2)
    proofs = ExportGate(per_caller=4, total=16)
    cache = export.ProofCache(db)

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
        with bundles.slot(caller_of(call.ctx)):
            return await asyncio.to_thread(export.build_bundle, db, origin, tenant_id)

    async def proof(call: Call) -> dict[str, Any]:
        event_id = call.params["event_id"]
        with proofs.slot(caller_of(call.ctx)):
            return await asyncio.to_thread(export.prove, db, event_id, own(call), cache)

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
