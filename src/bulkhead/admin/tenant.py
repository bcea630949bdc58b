"""/tenant/v1: self-service for a tenant's own admins and auditors.

The tenant is always the caller's own, taken from the credential; no route
takes a tenant name or id, so another tenant's objects are unreachable and a
key id of another tenant answers 404.  A key issues nothing broader than
itself: a key it creates or rotates has no role above its own, no model
outside its scope, no later expiry and no looser limits (a person's session
is bounded by its role alone, so a key held to models, an expiry or limits
manages no principals).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from bulkhead.admin import schemas as s
from bulkhead.admin import views
from bulkhead.admin.control import Control
from bulkhead.admin.effects import Effect
from bulkhead.admin.platform import bounded_expiry, expiry
from bulkhead.admin.router import Call, Route
from bulkhead.domain import TENANT_ROLES, ApiKey, PrincipalKind, Role, TenantContext
from bulkhead.errors import InvalidRequest, ModelNotFound, PermissionDenied
from bulkhead.limits import UsageLedger
from bulkhead.limits.policy import looser
from bulkhead.store import repo, selfservice

P = "/tenant/v1"
# A tenant admin may hand out any tenant role, since none ranks above its own;
# platform roles are never grantable from here.
_GRANTABLE = {Role.TENANT_ADMIN: TENANT_ROLES}


def tenant_id(ctx: TenantContext) -> str:
    assert ctx.tenant is not None  # The chain admits only tenant credentials here.
    return ctx.tenant.id


def check_roles(ctx: TenantContext, roles: list[Role]) -> None:
    grantable = _GRANTABLE.get(ctx.role, frozenset())
    for role in roles:
        if role not in grantable:
            raise InvalidRequest(f"You may not grant the role '{role.value}'.", param="roles")


def issuer(control: Control, ctx: TenantContext) -> ApiKey | None:
    """The API key the caller acts with; None for a person's session or IdP token."""
    key = control.catalog.snapshot.keys.get(ctx.credential_id)
    return key if key is not None and key.tenant_id == tenant_id(ctx) else None


def scoped_models(by: ApiKey | None, models: list[str] | None) -> list[str] | None:
    """A new key's models: within the issuer's scope, which it inherits if none are given."""
    if by is None or by.models is None:
        return models
    if models is None:
        return sorted(by.models)
    for model in models:
        if model not in by.models:
            raise ModelNotFound(model)
    return models


def no_broader(by: ApiKey | None, key: ApiKey) -> None:
    """Refuse to issue `key` again with `by` if it reaches further (models, expiry, limits)."""
    if by is None:
        return
    models = by.models is not None and (key.models is None or not key.models <= by.models)
    later = by.expires_at is not None and (key.expires_at is None or key.expires_at > by.expires_at)
    limits = any(looser((key.limits or {}).get(n), v) for n, v in (by.limits or {}).items())
    if models or later or limits:
        raise PermissionDenied(
            "That key reaches further than yours (models, expiry or limits): rotate it with a "
            "key that covers it."
        )


def unrestricted(by: ApiKey | None) -> None:
    """Refuse principal management to a key held to models, an expiry or limits.

    A principal's role reaches as far as its role does: a person signed in as it
    (password or the tenant's IdP) is bounded by that role alone.  So a key that
    is itself bounded must not make or change principals, or it would issue, at
    one remove, something broader than itself.
    """
    if by is not None and (by.models is not None or by.expires_at is not None or by.limits):
        raise PermissionDenied(
            "Your key is held to models, an expiry or limits: manage principals with an "
            "unrestricted credential."
        )


def routes(control: Control, ledger: UsageLedger) -> list[Route]:
    async def get_self(call: Call) -> s.TenantOut:
        tid = tenant_id(call.ctx)
        return views.tenant(
            await control.tenant_read(tid, lambda db: repo.get_tenant_by_id(db, tid))
        )

    async def list_keys(call: Call) -> list[s.KeyOut]:
        tid, name = tenant_id(call.ctx), call.ctx.tenant.name if call.ctx.tenant else None
        keys = await control.tenant_read(tid, lambda db: repo.list_keys(db, tid))
        return [views.key(k, name) for k in keys]

    async def create_key(call: Call) -> s.KeyCreated:
        body: s.KeyCreate = call.body
        check_roles(call.ctx, [body.role])
        tid, by = tenant_id(call.ctx), issuer(control, call.ctx)
        visible = control.catalog.snapshot.models_for(tid)
        for model in body.models or ():
            if model not in visible:
                raise ModelNotFound(model)
        models = scoped_models(by, body.models)
        expires_at = bounded_expiry(by, expiry(body.expires_in_s))

        def work(db: Session) -> s.KeyCreated:
            principal = repo.get_principal(db, tid, body.principal) if body.principal else None
            if principal is not None and body.role not in principal.roles:
                raise InvalidRequest("The principal does not hold that role.", param="role")
            created = repo.create_key(
                db,
                tid,
                role=body.role,
                principal=principal,
                models=models,
                expires_at=expires_at,
                name=body.name,
                # The issuer's limits hold the new key too, as a floor.
                limits_floor=by.limits if by is not None else None,
            )
            name = call.ctx.tenant.name if call.ctx.tenant else None
            return s.KeyCreated(key=views.key(created.key, name), secret=created.secret)

        return await control.tenant_write(tid, work)

    async def revoke_key(call: Call) -> s.KeyOut:
        tid = tenant_id(call.ctx)
        key = await control.tenant_write(
            tid, lambda db: repo.revoke_key(db, tid, call.params["key_id"])
        )
        return views.key(key, call.ctx.tenant.name if call.ctx.tenant else None)

    async def create_principal(call: Call) -> s.PrincipalOut:
        body: s.PrincipalCreate = call.body
        check_roles(call.ctx, body.roles)
        unrestricted(issuer(control, call.ctx))
        tid = tenant_id(call.ctx)
        return views.principal(
            await control.tenant_write(
                tid,
                lambda db: repo.create_principal(
                    db, tid, body.name, PrincipalKind(body.kind), body.roles
                ),
            )
        )

    async def update_principal(call: Call) -> s.PrincipalOut:
        body: s.PrincipalUpdate = call.body
        check_roles(call.ctx, body.roles)
        unrestricted(issuer(control, call.ctx))
        tid, name = tenant_id(call.ctx), call.params["name"]
        return views.principal(
            await control.tenant_write(
                tid,
                lambda db: selfservice.set_principal_roles(
                    db, tid, name, body.roles, actor=call.ctx.principal
                ),
            )
        )

    async def delete_principal(call: Call) -> dict[str, object]:
        unrestricted(issuer(control, call.ctx))
        tid, name = tenant_id(call.ctx), call.params["name"]
        revoked = await control.tenant_write(
            tid, lambda db: selfservice.delete_principal(db, tid, name, actor=call.ctx.principal)
        )
        return {"object": "principal", "name": name, "deleted": True, "revoked_keys": revoked}

    async def rotate_key(call: Call) -> s.KeyCreated:
        body: s.KeyRotate = call.body
        tid, by = tenant_id(call.ctx), issuer(control, call.ctx)

        def check(key: ApiKey) -> None:
            check_roles(call.ctx, [key.role])
            no_broader(by, key)

        def work(db: Session) -> s.KeyCreated:
            created = selfservice.rotate_key(
                db, tid, call.params["key_id"], grace_s=body.grace_s, check_key=check
            )
            name = call.ctx.tenant.name if call.ctx.tenant else None
            return s.KeyCreated(key=views.key(created.key, name), secret=created.secret)

        return await control.tenant_write(tid, work)

    async def list_principals(call: Call) -> list[s.PrincipalOut]:
        tid = tenant_id(call.ctx)
        return [
            views.principal(p)
            for p in await control.tenant_read(tid, lambda db: repo.list_principals(db, tid))
        ]

    async def usage(call: Call) -> list[s.UsageOut]:
        return [
            s.UsageOut(
                model=m,
                requests=u.requests,
                prompt_tokens=u.prompt_tokens,
                completion_tokens=u.completion_tokens,
            )
            for m, u in sorted(ledger.for_tenant(tenant_id(call.ctx)).items())
        ]

    async def list_models(call: Call) -> list[s.TenantModelOut]:
        visible = control.catalog.snapshot.models_for(tenant_id(call.ctx))
        return [
            s.TenantModelOut(name=n, shared=r.model.shared, endpoints=sorted(r.model.endpoints))
            for n, r in sorted(visible.items())
        ]

    return [
        Route(
            "GET",
            f"{P}/tenant",
            "tenant:self.get",
            get_self,
            "Show your tenant",
            response=s.TenantOut,
        ),
        Route(
            "GET",
            f"{P}/keys",
            "tenant:keys.list",
            list_keys,
            "List your tenant's keys",
            response=s.KeyOut,
            many=True,
        ),
        Route(
            "POST",
            f"{P}/keys",
            "tenant:keys.create",
            create_key,
            "Create an API key in your tenant (no broader than the key you use)",
            s.KeyCreate,
            s.KeyCreated,
            status=201,
            effects=frozenset({Effect.ACT_IN_TENANT}),
        ),
        Route(
            "POST",
            f"{P}/keys/{{key_id}}/revoke",
            "tenant:keys.revoke",
            revoke_key,
            "Revoke one of your tenant's keys",
            response=s.KeyOut,
        ),
        Route(
            "POST",
            f"{P}/keys/{{key_id}}/rotate",
            "tenant:keys.rotate",
            rotate_key,
            "Rotate a key: a new secret (shown once) for the same principal, role, models and "
            "limits (not of a key broader than the one you use)",
            s.KeyRotate,
            s.KeyCreated,
            status=201,
            effects=frozenset({Effect.ACT_IN_TENANT}),
        ),
        Route(
            "PATCH",
            f"{P}/principals/{{name}}",
            "tenant:principals.update",
            update_principal,
            "Change a principal's roles (not your own; never above your own)",
            s.PrincipalUpdate,
            s.PrincipalOut,
        ),
        Route(
            "DELETE",
            f"{P}/principals/{{name}}",
            "tenant:principals.delete",
            delete_principal,
            "Remove a principal and revoke its keys",
        ),
        Route(
            "POST",
            f"{P}/principals",
            "tenant:principals.create",
            create_principal,
            "Create a user or service account in your tenant",
            s.PrincipalCreate,
            s.PrincipalOut,
            status=201,
        ),
        Route(
            "GET",
            f"{P}/principals",
            "tenant:principals.list",
            list_principals,
            "List your tenant's principals",
            response=s.PrincipalOut,
            many=True,
        ),
        Route(
            "GET",
            f"{P}/usage",
            "tenant:usage.get",
            usage,
            "Token usage of your tenant on this gateway since it started",
            response=s.UsageOut,
            many=True,
        ),
        Route(
            "GET",
            f"{P}/models",
            "tenant:models.list",
            list_models,
            "Models your tenant may use",
            response=s.TenantModelOut,
            many=True,
        ),
    ]
