"""Tenants' own Cedar policies: `/tenant/v1/policies`, and the platform's read and repair of them.

A tenant admin replaces the whole set at once.  The text is checked before it
is stored: bounded (`bulkhead.policy._bounds`) before cedarpy parses it, then
it must parse, match the schema, and hold only `forbid` policies, so a tenant
can narrow the platform's policy and never widen it (see `bulkhead.policy`).
Checking parses tenant text, so it runs off the event loop, one check at a
time (cedarpy holds the GIL while it converts text, so concurrent checks
would add up on the loop), and the ids of a text already checked are kept.

A tenant admin can always reach these routes, whatever the tenant's own
policies forbid (`bulkhead.policy.SELF_REPAIR`).  A platform admin can repair
a tenant's policies too (replace or delete them), but only with an approved,
single-use grant for that tenant (`bulkhead.pam`): the router checks it, and
the audit log records the call and the grant's use.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from bulkhead.admin.effects import Effect
from bulkhead.admin.router import Call, Route
from bulkhead.admin.rules import tenant_id
from bulkhead.admin.schemas import Strict
from bulkhead.domain import Tenant
from bulkhead.policy import compile_tenant_policies, load_schema
from bulkhead.policy._bounds import MAX_BYTES
from bulkhead.store import repo
from bulkhead.store.policies import replace_tenant_policy, tenant_policy


class PoliciesUpdate(Strict):
    policies: str = Field(max_length=MAX_BYTES, description="Cedar policies: forbids only")


class PoliciesOut(BaseModel):
    tenant: str
    policies: str
    version: int
    ids: list[str] = Field(description="The policy ids as decisions and audit events name them")


@lru_cache(maxsize=1)
def _schema() -> Any:
    return load_schema()


@lru_cache(maxsize=64)
def compiled(tid: str, text: str) -> tuple[str, ...]:
    """The ids the text compiles to; raises `InvalidRequest` if it is refused (blocking)."""
    return tuple(sorted(compile_tenant_policies(tid, text, _schema()))) if text.strip() else ()


async def ids(call: Call, tid: str, text: str) -> list[str]:
    async with call.services.policy_checks:  # one check at a time
        return list(await asyncio.to_thread(compiled, tid, text))


async def out(call: Call, tid: str, name: str, text: str, version: int) -> PoliciesOut:
    named = await ids(call, tid, text)
    return PoliciesOut(tenant=name, policies=text, version=version, ids=named)


async def replace(call: Call, tenant: Tenant, text: str, *, platform: bool) -> PoliciesOut:
    await ids(call, tenant.id, text)  # Raises InvalidRequest: nothing is stored.
    control = call.services.control

    def work(db: Session) -> int:
        return replace_tenant_policy(db, tenant.id, text)

    version = await (control.write(work) if platform else control.tenant_write(tenant.id, work))
    return await out(call, tenant.id, tenant.name, text, version)


async def list_own(call: Call) -> PoliciesOut:
    tid = tenant_id(call.ctx)
    text, version = await call.services.control.tenant_read(tid, lambda db: tenant_policy(db, tid))
    return await out(call, tid, call.ctx.tenant.name if call.ctx.tenant else tid, text, version)


async def update_own(call: Call) -> PoliciesOut:
    body: PoliciesUpdate = call.body
    assert call.ctx.tenant is not None  # The chain admits only tenant credentials here.
    return await replace(call, call.ctx.tenant, body.policies, platform=False)


async def list_for(call: Call) -> PoliciesOut:
    name = call.params["name"]
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, name))
    text, version = await call.services.control.read(lambda db: tenant_policy(db, tenant.id))
    return await out(call, tenant.id, tenant.name, text, version)


async def repair(call: Call) -> PoliciesOut:
    body: PoliciesUpdate = call.body
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, call.params["name"]))
    return await replace(call, tenant, body.policies, platform=True)


async def remove(call: Call) -> None:
    tenant = await call.services.control.read(lambda db: repo.get_tenant(db, call.params["name"]))
    await call.services.control.write(lambda db: replace_tenant_policy(db, tenant.id, ""))


# A repair acts inside the tenant (it lifts or replaces the tenant's own rules):
# a platform admin needs a grant on that tenant for it.
_REPAIRS = frozenset({Effect.ACT_IN_TENANT, Effect.CHANGE_SAFEGUARDS})


_SAFEGUARDS = frozenset({Effect.CHANGE_SAFEGUARDS})


ROUTES = (
    Route.get(
        "/tenant/v1/policies",
        action="tenant:policies.list",
        handler=list_own,
        summary="Show your tenant's own policies",
        response=PoliciesOut,
    ),
    Route.put(
        "/tenant/v1/policies",
        action="tenant:policies.update",
        handler=update_own,
        summary="Replace your tenant's own policies (Cedar forbids only)",
        body=PoliciesUpdate,
        response=PoliciesOut,
        effects=_SAFEGUARDS,
    ),
    Route.get(
        "/admin/v1/tenants/{name}/policies",
        action="admin:policies.list",
        handler=list_for,
        summary="Show a tenant's own policies",
        response=PoliciesOut,
    ),
    Route.put(
        "/admin/v1/tenants/{name}/policies",
        action="admin:policies.update",
        handler=repair,
        summary="Replace a tenant's own policies, to repair them (needs a grant)",
        body=PoliciesUpdate,
        response=PoliciesOut,
        effects=_REPAIRS,
    ),
    Route.delete(
        "/admin/v1/tenants/{name}/policies",
        action="admin:policies.delete",
        handler=remove,
        summary="Delete a tenant's own policies, to repair them (needs a grant)",
        response=None,
        status=204,
        effects=_REPAIRS,
    ),
)
