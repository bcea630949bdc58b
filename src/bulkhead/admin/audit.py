"""Audit read APIs: platform auditors read all; a tenant's auditors and admins read their own.

A tenant's view holds its own events and the platform's actions on it;
other entries appear in its bundle as leaf hashes alone, and their event ids
answer 404.  Exports and proofs cost CPU and memory in proportion to the
log, so each caller (a tenant, or a platform principal) runs at most one
export and a few proofs at a time, and the gateway a few exports in all.

On the platform surface `?tenant=NAME` reads one tenant's view, as that
tenant would see it.  The log holds every tenant's events, so a platform
admin reads it, whole or one tenant's view, only with a grant for
`admin:audit.export.get` on that tenant or on "platform" (the whole log),
one grant for events, bundles and proofs alike; platform auditors read by
role.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from bulkhead.admin import answers
from bulkhead.admin.effects import Effect, Exempt
from bulkhead.admin.router import Call, Route
from bulkhead.audit import export
from bulkhead.audit.keys import verifier_keys
from bulkhead.domain import Role, TenantContext
from bulkhead.errors import RateLimited
from bulkhead.pam import PLATFORM_TARGET
from bulkhead.store import Database, repo

READ = "admin:audit.export.get"  # the grant a platform admin reads the log with


class ExportGate:
    """At most `per_caller` runs per caller and `total` in all; more answer 429 at once.

    Used from the event loop only, so its counts need no lock.
    """

    def __init__(self, *, per_caller: int, total: int, what: str = "audit exports or proofs"):
        self.per_caller, self.total, self.what = per_caller, total, what
        self._running: dict[str, int] = {}
        self._all = 0

    @contextlib.contextmanager
    def slot(self, caller: str) -> Iterator[None]:
        if self._running.get(caller, 0) >= self.per_caller or self._all >= self.total:
            raise RateLimited(
                f"Too many {self.what} are running; retry when yours has finished.",
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


async def platform_reads(call: Call) -> str | Exempt:
    """A platform admin reads the log with a grant, whatever the query; auditors by role."""
    if call.ctx.role is Role.PLATFORM_AUDITOR:
        return Exempt("platform_auditor")
    return call.query.get("tenant", PLATFORM_TARGET)


async def own(call: Call) -> str | None:
    """The tenant whose view to show: the caller's own, or `?tenant=` on the platform's."""
    if not call.ctx.is_platform:
        return call.ctx.tenant_id
    if "tenant" in call.query:
        return await asyncio.to_thread(tenant_named, call.services.db, call.query["tenant"])
    return None


async def events(call: Call) -> dict[str, Any]:
    after = call.int_query("after", -1, -1, 1 << 62)
    limit = call.int_query("limit", 100, 1, 1000)
    db, tenant = call.services.db, await own(call)
    data = await asyncio.to_thread(export.list_events, db, tenant, after, limit)
    return {"object": "list", "data": data}


async def bundle(call: Call) -> dict[str, Any]:
    tenant_id, s = await own(call), call.services
    with s.audit_bundles.slot(caller_of(call.ctx)):
        return await asyncio.to_thread(export.build_bundle, s.db, s.audit_origin, tenant_id)


async def proof(call: Call) -> dict[str, Any]:
    event_id, tenant_id, s = call.params["event_id"], await own(call), call.services
    with s.audit_proofs.slot(caller_of(call.ctx)):
        return await asyncio.to_thread(export.prove, s.db, event_id, tenant_id, s.proof_cache)


async def keys(call: Call) -> answers.AuditVerifiers:
    vkeys = await asyncio.to_thread(verifier_keys, call.services.db)
    return answers.AuditVerifiers(origin=call.services.audit_origin, verifiers=vkeys)


async def rotate_key(call: Call) -> answers.AuditKeyRotated:
    verifier = await asyncio.to_thread(call.services.rotate_audit_key)
    return answers.AuditKeyRotated(origin=call.services.audit_origin, verifier=verifier)


_READS = frozenset({Effect.READ_TENANT_DATA})

ROUTES = (
    Route.post(
        "/admin/v1/audit/keys/rotate",
        action="admin:audit.keys.rotate",
        handler=rotate_key,
        summary="Rotate the platform's checkpoint-signing key (needs a grant)",
        response=answers.AuditKeyRotated,
        effects=frozenset({Effect.ROTATE_AUDIT_KEY}),
    ),
    Route.get(
        "/admin/v1/audit/events",
        action="admin:audit.list",
        handler=events,
        summary="Audit events (?after=INDEX&limit=N; ?tenant=NAME: one tenant's view)",
        response=answers.AuditEvent,
        many=True,
        effects=_READS,
        grant_target=platform_reads,
        grant_action=READ,
    ),
    Route.get(
        "/admin/v1/audit/bundle",
        action="admin:audit.export.get",
        handler=bundle,
        summary="Export a verifiable audit bundle (?tenant=NAME: one tenant's view)",
        response=answers.AuditBundle,
        effects=_READS,
        grant_target=platform_reads,
        grant_action=READ,
    ),
    Route.get(
        "/admin/v1/audit/proofs/{event_id}",
        action="admin:audit.proof.get",
        handler=proof,
        summary="Inclusion proof of one event in the newest checkpoint",
        response=answers.AuditProof,
        effects=_READS,
        grant_target=platform_reads,
        grant_action=READ,
    ),
    Route.get(
        "/admin/v1/audit/keys",
        action="admin:audit.keys.list",
        handler=keys,
        summary="Public keys of the checkpoint signers",
        response=answers.AuditVerifiers,
    ),
    Route.get(
        "/tenant/v1/audit/events",
        action="tenant:audit.list",
        handler=events,
        summary="Your tenant's audit events (?after=INDEX&limit=N)",
        response=answers.AuditEvent,
        many=True,
        effects=_READS,
    ),
    Route.get(
        "/tenant/v1/audit/bundle",
        action="tenant:audit.export.get",
        handler=bundle,
        summary="Export a verifiable audit bundle of your tenant's view",
        response=answers.AuditBundle,
        effects=_READS,
    ),
    Route.get(
        "/tenant/v1/audit/proofs/{event_id}",
        action="tenant:audit.proof.get",
        handler=proof,
        summary="Inclusion proof of one event in the newest checkpoint",
        response=answers.AuditProof,
        effects=_READS,
    ),
    Route.get(
        "/tenant/v1/audit/keys",
        action="tenant:audit.keys.list",
        handler=keys,
        summary="Public keys of the checkpoint signers",
        response=answers.AuditVerifiers,
    ),
)
