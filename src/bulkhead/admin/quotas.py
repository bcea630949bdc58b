"""Quota-increase requests: a tenant admin asks (/tenant/v1), a platform admin decides (/admin/v1).

Approval writes the value into the tenant's `quotas`, and the catalog reloads
so the new limit holds on the next request.  Raising a tenant's limits above
its tier's defaults is privileged (`Effect.RAISE_LIMITS`), here and through
`PATCH /admin/v1/tenants/{name}/limits` alike: it needs the caller's live
grant for `admin:quota_requests.approve` on that tenant (`bulkhead.pam`),
used up by it.  Whether one call needs it depends on its value, which
`raise_target` reads before the handler runs; both routes ask it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from bulkhead.admin import schemas as s
from bulkhead.admin.control import Control
from bulkhead.admin.effects import Effect, Exempt
from bulkhead.admin.router import Call, Route
from bulkhead.admin.tenant import tenant_id
from bulkhead.domain import Tenant, Tier
from bulkhead.limits.policy import TIER_DEFAULTS as LIMIT_DEFAULTS
from bulkhead.limits.policy import looser
from bulkhead.store import repo, selfservice
from bulkhead.store.files import DEFAULT_STORAGE

APPROVE = "admin:quota_requests.approve"
WITHIN_TIER = Exempt("within_tier")


def tier_default(name: str, tier: Tier) -> int | None:
    """What a tenant of `tier` gets without asking: storage (`store/files.py`), or a limit."""
    return DEFAULT_STORAGE[tier] if name == "storage_bytes" else LIMIT_DEFAULTS[tier][name]


def raises_above_tier(tenant: Tenant, changes: dict[str, object]) -> list[str]:
    """The changed limits that go above both the tier's default and their value now.

    "default" goes back to the tier's value; lowering a value that an earlier
    grant put above the tier needs no new grant.
    """
    raised = []
    for name, value in changes.items():
        if value == "default" or not (value is None or isinstance(value, int)):
            continue
        default = tier_default(name, tenant.tier)
        now = tenant.quotas.get(name, default)
        if looser(value, default) and looser(value, now):
            raised.append(name)
    return raised


def tier_raises(tenant: Tenant, tier: Tier) -> list[str]:
    """The tenant's own values that a move to `tier` puts above that tier's defaults.

    Only those within the current tier's defaults count: they needed no grant
    when they were set, so moving up a tier, setting limits within it and
    moving back down must not leave them above the lower tier without one.  A
    value a grant put above the current tier needs none again.
    """
    raised = []
    for name, value in tenant.quotas.items():
        known = name in LIMIT_DEFAULTS[tier] or name == "storage_bytes"
        if not known or not (value is None or isinstance(value, int)):
            continue
        now, then = tier_default(name, tenant.tier), tier_default(name, tier)
        if looser(value, then) and not looser(value, now):
            raised.append(name)
    return raised


async def raise_target(control: Control, name: str, changes: dict[str, object]) -> str | Exempt:
    """The grant target for a change of a tenant's limits: the tenant, if it raises any."""
    tenant = await control.read(lambda db: repo.get_tenant(db, name))
    return name if raises_above_tier(tenant, changes) else WITHIN_TIER


def privileged(request: selfservice.QuotaRequest, tier: Tier) -> bool:
    return looser(request.value, tier_default(request.quota, tier))


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
        privileged=privileged(r, tier),
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


def platform_routes(control: Control) -> list[Route]:
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

    async def approve_target(call: Call) -> str | Exempt:
        request, tenant = await control.read(
            lambda db: selfservice.pending_quota_request(db, call.params["id"])
        )
        return await raise_target(control, tenant.name, {request.quota: request.value})

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
        return await decide(call, True, body.reason.strip() or None)

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
            effects=frozenset({Effect.RAISE_LIMITS}),
            grant_target=approve_target,
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
