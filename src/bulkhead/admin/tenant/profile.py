"""/tenant/v1/tenant, /usage and /models: the caller's own tenant, its usage and its models."""

from __future__ import annotations

from bulkhead.admin import schemas as s
from bulkhead.admin import views
from bulkhead.admin.router import Call, Route
from bulkhead.admin.rules import tenant_id
from bulkhead.admin.usage import usage_of
from bulkhead.store import repo


async def get_self(call: Call) -> s.TenantOut:
    tid = tenant_id(call.ctx)
    control = call.services.control
    return views.tenant(await control.tenant_read(tid, lambda db: repo.get_tenant_by_id(db, tid)))


async def usage(call: Call) -> list[s.UsageOut]:
    # The tenant is the credential's, whatever the query says (`tenant_id` is no parameter).
    return await usage_of(call, tenant_id(call.ctx), platform=False)


async def list_models(call: Call) -> list[s.TenantModelOut]:
    visible = call.services.catalog.snapshot.models_for(tenant_id(call.ctx))
    return [
        s.TenantModelOut(name=n, shared=r.model.shared, endpoints=sorted(r.model.endpoints))
        for n, r in sorted(visible.items())
    ]


ROUTES = (
    Route.get(
        "/tenant/v1/tenant",
        action="tenant:self.get",
        handler=get_self,
        summary="Show your tenant",
        response=s.TenantOut,
    ),
    Route.get(
        "/tenant/v1/usage",
        action="tenant:usage.get",
        handler=usage,
        summary="Your tenant's model calls, tokens, latency and refusals (durable; query: "
        "since, until, group_by=model,key,reason,hour|day, limit)",
        response=s.UsageOut,
        many=True,
    ),
    Route.get(
        "/tenant/v1/models",
        action="tenant:models.list",
        handler=list_models,
        summary="Models your tenant may use",
        response=s.TenantModelOut,
        many=True,
    ),
)
