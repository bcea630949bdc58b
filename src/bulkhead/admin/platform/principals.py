"""/admin/v1/tenants/{name}/principals: a tenant's users and service accounts."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bulkhead.admin import rules, views
from bulkhead.admin import schemas as s
from bulkhead.admin.router import Call, Route
from bulkhead.domain import PrincipalKind
from bulkhead.store import repo


async def create_principal(call: Call) -> s.PrincipalOut:
    body: s.PrincipalCreate = call.body
    rules.tenant_roles_only(body.roles)
    name = call.params["name"]

    def work(db: Session) -> s.PrincipalOut:
        tenant = repo.get_tenant(db, name)
        kind = PrincipalKind(body.kind)
        return views.principal(repo.create_principal(db, tenant.id, body.name, kind, body.roles))

    return await call.services.control.write(work)


async def list_principals(call: Call) -> list[s.PrincipalOut]:
    name = call.params["name"]

    def work(db: Session) -> list[s.PrincipalOut]:
        tenant = repo.get_tenant(db, name)
        return [views.principal(p) for p in repo.list_principals(db, tenant.id)]

    return await call.services.control.read(work)


ROUTES = (
    Route.post(
        "/admin/v1/tenants/{name}/principals",
        action="admin:principals.create",
        handler=create_principal,
        summary="Create a user or service account",
        body=s.PrincipalCreate,
        response=s.PrincipalOut,
        status=201,
    ),
    Route.get(
        "/admin/v1/tenants/{name}/principals",
        action="admin:principals.list",
        handler=list_principals,
        summary="List a tenant's principals",
        response=s.PrincipalOut,
        many=True,
    ),
)
