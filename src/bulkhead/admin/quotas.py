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
from bulkhead.admin.rules import tenant_id
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


def raise_check(tenant: Tenant, changes: dict[str, object]) -> str | Exempt:
    """The grant target for a change of a tenant's limits: the tenant, if it raises any.

    The one rule for both routes that raise limits (an approved quota request
    and `PATCH /admin/v1/tenants/{name}/limits`), asked by the router before
    their handlers run (`Route.grant_target`).
    """
    return tenant.name if raises_above_tier(tenant, changes) else WITHIN_TIER


async def raise_target(control: Control, name: str, changes: dict[str, object]) -> str | Exempt:
    """`raise_check` of the tenant named `name`, as it is now."""
    tenant = await control.read(lambda db: repo.get_tenant(db, name))
    return raise_check(tenant, changes)


def privileged(request: selfservice.QuotaRequest, tier: Tier) -> bool:
    """Shown with a request: whether it asks for more than the tier's default (so approving
    it needs a grant unless the tenant already holds as much; `raise_check` decides)."""
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


def _own(call: Call) -> tuple[dict[str, str], dict[str, Tier]]:
    t = call.ctx.tenant
    return ({t.id: t.name}, {t.id: t.tier}) if t else ({}, {})


def _tenants(db: Session) -> tuple[dict[str, str], dict[str, Tier]]:
    found = repo.list_tenants(db)
    return {t.id: t.name for t in found}, {t.id: t.tier for t in found}


async def create_request(call: Call) -> s.QuotaRequestOut:
    body: s.QuotaRequestCreate = call.body
    tid, by = tenant_id(call.ctx), call.ctx.principal.id
    made = await call.services.control.tenant_write(
        tid,
        lambda db: selfservice.create_quota_request(
            db, tid, quota=body.quota, value=body.value, reason=body.reason.strip(), requested_by=by
        ),
    )
    return _out(made, *_own(call))


async def list_own_requests(call: Call) -> list[s.QuotaRequestOut]:
    tid, status = tenant_id(call.ctx), call.query.get("status")
    found = await call.services.control.tenant_read(
        tid, lambda db: selfservice.list_quota_requests(db, tid, status)
    )
    return [_out(r, *_own(call)) for r in found]


async def list_requests(call: Call) -> list[s.QuotaRequestOut]:
    status = call.query.get("status")

    def work(db: Session) -> list[s.QuotaRequestOut]:
        names, tiers = _tenants(db)
        return [_out(r, names, tiers) for r in selfservice.list_quota_requests(db, None, status)]

    return await call.services.control.read(work)


async def approve_target(call: Call) -> str | Exempt:
    """The router's grant check for an approval: the rule `PATCH .../limits` is held to."""
    request_id = call.params["id"]
    request, tenant = await call.services.control.read(
        lambda db: selfservice.pending_quota_request(db, request_id)
    )
    return raise_check(tenant, {request.quota: request.value})


async def _decide(call: Call, approve: bool) -> s.QuotaRequestOut:
    body: s.QuotaDecision = call.body
    request_id, by, reason = call.params["id"], call.ctx.principal.id, body.reason.strip() or None

    def work(db: Session) -> s.QuotaRequestOut:
        decided = selfservice.decide_quota_request(
            db, request_id, approve=approve, decided_by=by, reason=reason
        )
        return _out(decided, *_tenants(db))

    return await call.services.control.write(work)


async def approve(call: Call) -> s.QuotaRequestOut:
    return await _decide(call, True)


async def deny(call: Call) -> s.QuotaRequestOut:
    return await _decide(call, False)


ROUTES = (
    Route.post(
        "/tenant/v1/quota-requests",
        action="tenant:quota_requests.create",
        handler=create_request,
        summary="Ask the platform to raise one of your tenant's quotas",
        body=s.QuotaRequestCreate,
        response=s.QuotaRequestOut,
        status=201,
    ),
    Route.get(
        "/tenant/v1/quota-requests",
        action="tenant:quota_requests.list",
        handler=list_own_requests,
        summary="Your tenant's quota requests",
        response=s.QuotaRequestOut,
        many=True,
    ),
    Route.get(
        "/admin/v1/quota-requests",
        action="admin:quota_requests.list",
        handler=list_requests,
        summary="Quota requests of every tenant (filter with ?status=pending)",
        response=s.QuotaRequestOut,
        many=True,
    ),
    Route.post(
        "/admin/v1/quota-requests/{id}/approve",
        action=APPROVE,
        handler=approve,
        summary="Approve a quota request (above the tier default, with a grant on the tenant)",
        body=s.QuotaDecision,
        response=s.QuotaRequestOut,
        effects=frozenset({Effect.RAISE_LIMITS}),
        grant_target=approve_target,
    ),
    Route.post(
        "/admin/v1/quota-requests/{id}/deny",
        action="admin:quota_requests.deny",
        handler=deny,
        summary="Deny a quota request",
        body=s.QuotaDecision,
        response=s.QuotaRequestOut,
    ),
)
