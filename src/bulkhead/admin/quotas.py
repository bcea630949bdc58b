"""Quota-increase requests: a tenant admin asks (/tenant/v1), a platform admin decides (/admin/v1).

Approval writes the value into the tenant's `quotas`, and the catalog reloads
so the new limit holds on the next request.  Approving a value above the
tenant tier's default is privileged: it needs the approver's live grant for
`admin:quota_requests.approve` on that tenant (`bulkhead.pam`), and the
grant is used up by it.  Whether a grant is needed depends on the request's
value, which the router cannot see before the handler runs, so this handler
asks for the grant itself rather than marking the route `privileged`.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session

from bulkhead.admin import schemas as s
from bulkhead.admin.control import Control
from bulkhead.admin.router import Call, Route
from bulkhead.admin.tenant import tenant_id
from bulkhead.domain import Tenant, Tier
from bulkhead.errors import BulkheadError, PermissionDenied
from bulkhead.limits.policy import TIER_DEFAULTS as LIMIT_DEFAULTS
from bulkhead.pam import AccessRequest, AccessService
from bulkhead.store import repo, selfservice
from bulkhead.store.files import DEFAULT_STORAGE

APPROVE = "admin:quota_requests.approve"
# What a tenant of each tier gets without asking: storage (`store/files.py`) and
# the rate limits and budgets that admission enforces (`bulkhead.limits.policy`).
TIER_DEFAULTS: dict[str, dict[Tier, int]] = {
    "storage_bytes": dict(DEFAULT_STORAGE),
    **{
        name: {tier: LIMIT_DEFAULTS[tier][name] or 0 for tier in Tier}
        for name in ("requests_per_minute", "tokens_per_minute", "concurrency")
    },
}


def needs_grant(request: selfservice.QuotaRequest, tenant: Tenant) -> bool:
    return request.value > TIER_DEFAULTS[request.quota][tenant.tier]


def _out(
    r: selfservice.QuotaRequest, names: dict[str, str], tiers: dict[str, Tier]
) -> s.QuotaRequestOut:
    tier = tiers.get(r.tenant_id, Tier.SHARED)
    return s.QuotaRequestOut(
        id=r.id,
        tenant=names.get(r.tenant_id),
        quota=r.quota,
        value=r.value,
        reason=r.reason,
        status=r.status.value,
        requested_by=r.requested_by,
        decided_by=r.decided_by,
        decision_reason=r.decision_reason,
        created_at=r.created_at,
        decided_at=r.decided_at,
        privileged=r.value > TIER_DEFAULTS[r.quota][tier],
    )


def tenant_routes(control: Control) -> list[Route]:
    def known(call: Call) -> tuple[dict[str, str], dict[str, Tier]]:
        t = call.ctx.tenant
        return ({t.id: t.name}, {t.id: t.tier}) if t else ({}, {})

    async def create(call: Call) -> s.QuotaRequestOut:
        body: s.QuotaRequestCreate = call.body
        tid = tenant_id(call.ctx)
        made = await control.tenant_write(
            tid,
            lambda db: selfservice.create_quota_request(
                db,
                tid,
                quota=body.quota,
                value=body.value,
                reason=body.reason.strip(),
                requested_by=call.ctx.principal.id,
            ),
        )
        return _out(made, *known(call))

    async def list_requests(call: Call) -> list[s.QuotaRequestOut]:
        tid, status = tenant_id(call.ctx), call.query.get("status")
        found = await control.tenant_read(
            tid, lambda db: selfservice.list_quota_requests(db, tid, status)
        )
        return [_out(r, *known(call)) for r in found]

    return [
        Route(
            "POST",
            "/tenant/v1/quota-requests",
            "tenant:quota_requests.create",
            create,
            "Ask the platform to raise one of your tenant's quotas",
            s.QuotaRequestCreate,
            s.QuotaRequestOut,
            status=201,
        ),
        Route(
            "GET",
            "/tenant/v1/quota-requests",
            "tenant:quota_requests.list",
            list_requests,
            "Your tenant's quota requests",
            response=s.QuotaRequestOut,
            many=True,
        ),
    ]


def platform_routes(control: Control, pam: AccessService | None) -> list[Route]:
    def tenants(db: Session) -> tuple[dict[str, str], dict[str, Tier]]:
        found = repo.list_tenants(db)
        return {t.id: t.name for t in found}, {t.id: t.tier for t in found}

    async def list_requests(call: Call) -> list[s.QuotaRequestOut]:
        status = call.query.get("status")

        def work(db: Session) -> list[s.QuotaRequestOut]:
            names, tiers = tenants(db)
            found = selfservice.list_quota_requests(db, None, status)
            return [_out(r, names, tiers) for r in found]

        return await control.read(work)

    async def grant_for(call: Call) -> AccessRequest | None:
        request, tenant = await control.read(
            lambda db: selfservice.pending_quota_request(db, call.params["id"])
        )
        if not needs_grant(request, tenant):
            return None
        if pam is None:  # Fail closed: no grants can exist without the service.
            raise PermissionDenied(f"'{APPROVE}' needs a grant and none can be issued here.")
        return await asyncio.to_thread(pam.use, call.ctx, APPROVE, tenant.name)

    async def decide(call: Call, approve: bool, reason: str | None) -> s.QuotaRequestOut:
        def work(db: Session) -> s.QuotaRequestOut:
            decided = selfservice.decide_quota_request(
                db,
                call.params["id"],
                approve=approve,
                decided_by=call.ctx.principal.id,
                reason=reason,
            )
            return _out(decided, *tenants(db))

        return await control.write(work)

    async def approve(call: Call) -> s.QuotaRequestOut:
        body: s.QuotaDecision = call.body
        grant = await grant_for(call)
        try:
            return await decide(call, True, body.reason.strip() or None)
        except BulkheadError:
            if grant is not None and pam is not None:
                await asyncio.to_thread(pam.release, grant)
            raise

    async def deny(call: Call) -> s.QuotaRequestOut:
        body: s.QuotaDecision = call.body
        return await decide(call, False, body.reason.strip() or None)

    return [
        Route(
            "GET",
            "/admin/v1/quota-requests",
            "admin:quota_requests.list",
            list_requests,
            "Quota requests of every tenant (filter with ?status=pending)",
            response=s.QuotaRequestOut,
            many=True,
        ),
        Route(
            "POST",
            "/admin/v1/quota-requests/{id}/approve",
            APPROVE,
            approve,
            "Approve a quota request (above the tier default, with a grant on the tenant)",
            s.QuotaDecision,
            s.QuotaRequestOut,
        ),
        Route(
            "POST",
            "/admin/v1/quota-requests/{id}/deny",
            "admin:quota_requests.deny",
            deny,
            "Deny a quota request",
            s.QuotaDecision,
            s.QuotaRequestOut,
        ),
    ]
