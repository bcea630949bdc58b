"""Tenants' own Cedar policies: `/tenant/v1/policies` and the platform's read of them.

A tenant admin replaces the whole set at once.  The text is checked before it
is stored: it must parse, match the schema, and hold only `forbid` policies,
so a tenant can narrow the platform's policy and never widen it (see
`bulkhead.policy.cedar`).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from bulkhead.admin.control import Control
from bulkhead.admin.effects import Effect
from bulkhead.admin.router import Call, Route
from bulkhead.admin.schemas import Strict
from bulkhead.admin.tenant import tenant_id
from bulkhead.policy import compile_tenant_policies, load_schema
from bulkhead.store import repo
from bulkhead.store.policies import replace_tenant_policy, tenant_policy


class PoliciesUpdate(Strict):
    policies: str = Field(max_length=64 * 1024, description="Cedar policies: forbids only")


class PoliciesOut(BaseModel):
    tenant: str
    policies: str
    version: int
    ids: list[str] = Field(description="The policy ids as decisions and audit events name them")


def routes(control: Control) -> list[Route]:
    schema = load_schema()

    def out(tid: str, name: str, text: str, version: int) -> PoliciesOut:
        ids = sorted(compile_tenant_policies(tid, text, schema)) if text.strip() else []
        return PoliciesOut(tenant=name, policies=text, version=version, ids=ids)

    async def list_own(call: Call) -> PoliciesOut:
        tid = tenant_id(call.ctx)
        text, version = await control.tenant_read(tid, lambda db: tenant_policy(db, tid))
        return out(tid, call.ctx.tenant.name if call.ctx.tenant else tid, text, version)

    async def update_own(call: Call) -> PoliciesOut:
        body: PoliciesUpdate = call.body
        tid = tenant_id(call.ctx)
        if body.policies.strip():
            compile_tenant_policies(tid, body.policies, schema)  # Raises InvalidRequest.
        version = await control.tenant_write(
            tid, lambda db: replace_tenant_policy(db, tid, body.policies)
        )
        return out(tid, call.ctx.tenant.name if call.ctx.tenant else tid, body.policies, version)

    async def list_for(call: Call) -> PoliciesOut:
        name = call.params["name"]
        tenant = await control.read(lambda db: repo.get_tenant(db, name))
        text, version = await control.read(lambda db: tenant_policy(db, tenant.id))
        return out(tenant.id, tenant.name, text, version)

    return [
        Route(
            "GET",
            "/tenant/v1/policies",
            "tenant:policies.list",
            list_own,
            "Show your tenant's own policies",
            response=PoliciesOut,
        ),
        Route(
            "PUT",
            "/tenant/v1/policies",
            "tenant:policies.update",
            update_own,
            "Replace your tenant's own policies (Cedar forbids only)",
            body=PoliciesUpdate,
            response=PoliciesOut,
            effects=frozenset({Effect.CHANGE_SAFEGUARDS}),
        ),
        Route(
            "GET",
            "/admin/v1/tenants/{name}/policies",
            "admin:policies.list",
            list_for,
            "Show a tenant's own policies",
            response=PoliciesOut,
        ),
    ]
