"""/admin/v1/tenants: create, list, show, suspend or move tenants between tiers; their usage."""

from __future__ import annotations

from bulkhead.admin import quotas, views
from bulkhead.admin import schemas as s
from bulkhead.admin.effects import Effect, Exempt
from bulkhead.admin.router import Call, Route
from bulkhead.admin.usage import usage_of
from bulkhead.errors import InvalidRequest
from bulkhead.store import repo


async def create_tenant(call: Call) -> s.TenantOut:
    body: s.TenantCreate = call.body
    control = call.services.control
    return views.tenant(
        await control.write(lambda db: repo.create_tenant(db, body.name, body.tier))
    )


async def list_tenants(call: Call) -> list[s.TenantOut]:
    return [views.tenant(t) for t in await call.services.control.read(repo.list_tenants)]


async def get_tenant(call: Call) -> s.TenantOut:
    name = call.params["name"]
    return views.tenant(await call.services.control.read(lambda db: repo.get_tenant(db, name)))


async def tenant_usage(call: Call) -> list[s.UsageOut]:
    name = call.params["name"]
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, name))
    return await usage_of(call, tenant.id, platform=True)


async def tier_target(call: Call) -> str | Exempt:
    """A tier move that leaves the tenant's own limits above the new tier needs the grant."""
    body: s.TenantUpdate = call.body
    if body.tier is None:
        return quotas.WITHIN_TIER
    tier, name = body.tier, call.params["name"]
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, name))
    return name if quotas.tier_raises(tenant, tier) else quotas.WITHIN_TIER


async def update_tenant(call: Call) -> s.TenantOut:
    body: s.TenantUpdate = call.body
    if body.status is None and body.tier is None:
        raise InvalidRequest("Give a new 'status' or 'tier'.", param="status")
    name = call.params["name"]
    return views.tenant(
        await call.services.control.write(
            lambda db: repo.update_tenant(db, name, status=body.status, tier=body.tier)
        )
    )


ROUTES = (
    Route.post(
        "/admin/v1/tenants",
        action="admin:tenants.create",
        handler=create_tenant,
        summary="Create a tenant",
        body=s.TenantCreate,
        response=s.TenantOut,
        status=201,
    ),
    Route.get(
        "/admin/v1/tenants",
        action="admin:tenants.list",
        handler=list_tenants,
        summary="List tenants",
        response=s.TenantOut,
        many=True,
    ),
    Route.get(
        "/admin/v1/tenants/{name}",
        action="admin:tenants.get",
        handler=get_tenant,
        summary="Show a tenant",
        response=s.TenantOut,
    ),
    Route.get(
        "/admin/v1/tenants/{name}/usage",
        action="admin:tenants.get",
        handler=tenant_usage,
        summary="A tenant's model calls, tokens, latency and refusals (durable; query: since, "
        "until, group_by=model,key,reason,hour|day, limit)",
        response=s.UsageOut,
        many=True,
    ),
    Route.patch(
        "/admin/v1/tenants/{name}",
        action="admin:tenants.update",
        handler=update_tenant,
        summary="Suspend or reactivate a tenant, or move it to another isolation tier (down "
        "with its own limits above the new tier's defaults: a grant for "
        "'admin:quota_requests.approve')",
        body=s.TenantUpdate,
        response=s.TenantOut,
        effects=frozenset({Effect.RAISE_LIMITS}),
        grant_target=tier_target,
        grant_action=quotas.APPROVE,
    ),
)
