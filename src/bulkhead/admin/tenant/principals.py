"""/tenant/v1/principals: the tenant's users and service accounts, managed by its own admins.

Roles are never handed out above the caller's own, and a key held to models,
an expiry or limits manages no principals (`bulkhead.admin.rules`).
"""

from __future__ import annotations

from bulkhead.admin import answers, rules, views
from bulkhead.admin import schemas as s
from bulkhead.admin.router import Call, Route
from bulkhead.domain import PrincipalKind
from bulkhead.store import repo, selfservice


async def create_principal(call: Call) -> s.PrincipalOut:
    body: s.PrincipalCreate = call.body
    control = call.services.control
    rules.grantable(call.ctx, body.roles)
    rules.unrestricted(rules.issuer(control, call.ctx))
    tid, kind = rules.tenant_id(call.ctx), PrincipalKind(body.kind)
    made = await control.tenant_write(
        tid, lambda db: repo.create_principal(db, tid, body.name, kind, body.roles)
    )
    return views.principal(made)


async def list_principals(call: Call) -> list[s.PrincipalOut]:
    tid = rules.tenant_id(call.ctx)
    found = await call.services.control.tenant_read(tid, lambda db: repo.list_principals(db, tid))
    return [views.principal(p) for p in found]


async def update_principal(call: Call) -> s.PrincipalOut:
    body: s.PrincipalUpdate = call.body
    control = call.services.control
    rules.grantable(call.ctx, body.roles)
    rules.unrestricted(rules.issuer(control, call.ctx))
    tid, name, actor = rules.tenant_id(call.ctx), call.params["name"], call.ctx.principal
    changed = await control.tenant_write(
        tid, lambda db: selfservice.set_principal_roles(db, tid, name, body.roles, actor=actor)
    )
    return views.principal(changed)


async def delete_principal(call: Call) -> answers.PrincipalDeleted:
    control = call.services.control
    rules.unrestricted(rules.issuer(control, call.ctx))
    tid, name, actor = rules.tenant_id(call.ctx), call.params["name"], call.ctx.principal
    revoked = await control.tenant_write(
        tid, lambda db: selfservice.delete_principal(db, tid, name, actor=actor)
    )
    return answers.PrincipalDeleted(
        object="principal", name=name, deleted=True, revoked_keys=revoked
    )


ROUTES = (
    Route.post(
        "/tenant/v1/principals",
        action="tenant:principals.create",
        handler=create_principal,
        summary="Create a user or service account in your tenant",
        body=s.PrincipalCreate,
        response=s.PrincipalOut,
        status=201,
    ),
    Route.get(
        "/tenant/v1/principals",
        action="tenant:principals.list",
        handler=list_principals,
        summary="List your tenant's principals",
        response=s.PrincipalOut,
        many=True,
    ),
    Route.patch(
        "/tenant/v1/principals/{name}",
        action="tenant:principals.update",
        handler=update_principal,
        summary="Change a principal's roles (not your own; never above your own)",
        body=s.PrincipalUpdate,
        response=s.PrincipalOut,
    ),
    Route.delete(
        "/tenant/v1/principals/{name}",
        action="tenant:principals.delete",
        handler=delete_principal,
        summary="Remove a principal and revoke its keys",
        response=answers.PrincipalDeleted,
    ),
)
