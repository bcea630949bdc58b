"""/tenant/v1/tenant, /usage and /models: the caller's own tenant, its usage and its models."""

from __future__ import annotations

from bulkhead.admin import schemas as s
from bulkhead.admin import views
from bulkhead.admin.router import Call, Route
from bulkhead.admin.rules import tenant_id
from bulkhead.store import repo


async def get_self(call: Call) -> s.TenantOut:
    tid = tenant_id(call.ctx)
    control = call.services.control
    return views.tenant(await control.tenant_read(tid, lambda db: repo.get_tenant_by_id(db, tid)))


async def usage(call: Call) -> list[s.UsageOut]:
    used = call.services.ledger.for_tenant(tenant_id(call.ctx))
    return [
        s.UsageOut(
            model=m,
            requests=u.requests,
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
        )
        for m, u in sorted(used.items())
    ]


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
        summary="Token usage of your tenant on this gateway since it started",
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
