"""/admin/v1/tenants/{name}/keys and /admin/v1/keys/{key_id}/revoke: a tenant's API keys.

Every key a platform admin makes in a tenant needs a grant on it, but for the
tenant's first `tenant_admin` key (`bulkhead.admin.bootstrap`).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from bulkhead.admin import bootstrap, rules, views
from bulkhead.admin import schemas as s
from bulkhead.admin.effects import Effect, Exempt
from bulkhead.admin.router import Call, Route
from bulkhead.domain import Role
from bulkhead.store import repo


async def mint_target(call: Call) -> str | Exempt:
    body: s.KeyCreate = call.body
    first_admin = body.role is Role.TENANT_ADMIN
    return await bootstrap.grant_target(call.services.control, call, lambda db: first_admin)


async def create_key(call: Call) -> s.KeyCreated:
    body: s.KeyCreate = call.body
    rules.tenant_roles_only([body.role])
    control = call.services.control
    # An expiring platform key mints nothing that outlives it, in a tenant too.
    expires_at = rules.bounded_expiry(
        rules.issuer(control, call.ctx), rules.expiry(body.expires_in_s)
    )

    def work(db: Session) -> s.KeyCreated:
        tenant = repo.get_tenant(db, call.params["name"])
        principal = repo.get_principal(db, tenant.id, body.principal) if body.principal else None
        rules.holds(principal, body.role)
        created = repo.create_key(
            db,
            tenant.id,
            role=body.role,
            principal=principal,
            models=body.models,
            expires_at=expires_at,
            name=body.name,
        )
        if body.role is Role.TENANT_ADMIN:
            bootstrap.claim(db, call, tenant.id, "admin:keys.create")
        return s.KeyCreated(key=views.key(created.key, tenant.name), secret=created.secret)

    return await control.write(work)


async def list_keys(call: Call) -> list[s.KeyOut]:
    name = call.params["name"]

    def work(db: Session) -> list[s.KeyOut]:
        tenant = repo.get_tenant(db, name)
        return [views.key(k, tenant.name) for k in repo.list_keys(db, tenant.id)]

    return await call.services.control.read(work)


async def revoke_key(call: Call) -> s.KeyOut:
    key_id = call.params["key_id"]

    def work(db: Session) -> s.KeyOut:
        tenant_id = repo.key_tenant(db, key_id)
        name = repo.get_tenant_by_id(db, tenant_id).name if tenant_id else None
        return views.key(repo.revoke_key(db, tenant_id, key_id), name)

    return await call.services.control.write(work)


ROUTES = (
    Route.post(
        "/admin/v1/tenants/{name}/keys",
        action="admin:keys.create",
        handler=create_key,
        summary="Create an API key in a tenant (a grant, but for its first tenant_admin key)",
        body=s.KeyCreate,
        response=s.KeyCreated,
        status=201,
        effects=frozenset({Effect.ACT_IN_TENANT}),
        grant_target=mint_target,
    ),
    Route.get(
        "/admin/v1/tenants/{name}/keys",
        action="admin:keys.list",
        handler=list_keys,
        summary="List a tenant's API keys",
        response=s.KeyOut,
        many=True,
    ),
    Route.post(
        "/admin/v1/keys/{key_id}/revoke",
        action="admin:keys.revoke",
        handler=revoke_key,
        summary="Revoke an API key",
        response=s.KeyOut,
    ),
)
